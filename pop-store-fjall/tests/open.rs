//! Opening: the data survives a reopen; a directory holding something else is refused with an
//! error that says what it holds.

use pop_core::model::Customer;
use pop_core::store::StoreExt;
use pop_store_fjall::{Config, FjallStore, FlushPolicy};

#[tokio::test]
async fn a_reopened_database_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path()).flush_policy(FlushPolicy::FlushEveryWrite);
    {
        let store = FjallStore::open(config.clone()).unwrap();
        let mut customer = Customer { id: Some("acme".into()), ..Default::default() };
        store.create_obj(&mut customer).await.unwrap();
    }
    let store = FjallStore::open(config).unwrap();
    let customer: Customer = store.fetch("acme").await.unwrap();
    assert_eq!(customer.version, 1);
}

#[test]
fn a_sled_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["conf", "db"] {
        std::fs::write(dir.path().join(f), b"sled").unwrap();
    }
    let err = FjallStore::open(Config::new(dir.path())).unwrap_err().to_string();
    assert!(err.contains("holds a sled database"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "fjall wrote into the sled directory");
}

#[test]
fn a_directory_of_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = FjallStore::open(Config::new(dir.path())).unwrap_err().to_string();
    assert!(err.contains("not a fjall database (notes.txt)"), "{err}");
}
