//! `pop serve --console on|read-only|off`: where the web console is, and that the read-only console's
//! API refuses changes while the main API does not. (The console itself is tested in a browser by
//! `.ci/console.sh`; the router by `pop-http/tests/console.rs`.)
#![cfg(unix)]

mod common;

use common::{ADMIN, Proc, pop, start, url_of};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Starts `pop serve` with `extra` flags; returns the process and its address (host:port).
fn serve(dir: &std::path::Path, extra: &[&str]) -> (Proc, String) {
    let mut cmd = pop();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-timed"])
        .arg("--data")
        .arg(dir.join(format!("data{}", extra.join("-"))))
        .arg("--auth")
        .arg(dir.join("auth.toml"))
        .args(extra);
    let (proc, line) = start(cmd, "pop serve ready");
    (proc, url_of(&line).trim_start_matches("http://").to_owned())
}

/// One HTTP/1.1 request; returns the status, the headers (lower-case names) and the body.
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), rest.to_owned())
}

#[test]
fn the_console_is_where_its_flag_says() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("auth.toml"),
        format!("anonymous = \"deny\"\n[[tokens]]\ntoken = \"{ADMIN}\"\nuser = \"admin\"\nsuperuser = true\n"),
    )
    .unwrap();

    // on (the default): the page, its assets, the API it calls at /pop
    let (_on, addr) = serve(tmp.path(), &[]);
    let (status, head, page) = http(&addr, "GET", "/ui", None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(page.contains(r#"data-read-only="false""#) && page.contains(r#"data-api-base="""#));
    let (status, head, _) = http(&addr, "GET", "/ui/app.js", None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert_eq!(http(&addr, "GET", "/ui/", None).0, 308);

    // read-only: the page hides changes and calls a read-only API at /ui/api; /pop stays writable
    let (_ro, addr) = serve(tmp.path(), &["--console", "read-only"]);
    let (_, _, page) = http(&addr, "GET", "/ui", None);
    assert!(page.contains(r#"data-read-only="true""#) && page.contains(r#"data-api-base="/ui/api""#));
    let customer = r#"{"id": "acme", "customerId": "acme", "title": "Acme"}"#;
    let (status, _, body) = http(&addr, "POST", "/ui/api/pop/customer", Some(customer));
    assert_eq!(status, 403, "{body}");
    assert_eq!(http(&addr, "POST", "/pop/customer", Some(customer)).0, 200);
    let (status, _, body) = http(&addr, "GET", "/ui/api/pop/customer/acme", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Acme"));
    assert_eq!(http(&addr, "DELETE", "/ui/api/pop/customer/acme", None).0, 403);

    // off: no console
    let (_off, addr) = serve(tmp.path(), &["--console", "off"]);
    assert_eq!(http(&addr, "GET", "/ui", None).0, 404);
    assert_eq!(http(&addr, "GET", "/healthz", None).0, 200);
}
