//! The namespace flags of the runtime (`pop worker --runtime k8s --namespace-for ...`), run as a built
//! binary: a wrong flag stops `pop` with exit 2 and one line naming it, in every build (the flags are
//! checked before the `k8s` feature is needed), after nothing but the store was opened.

use std::path::Path;
use std::process::Command;

fn worker(dir: &Path, flags: &[&str]) -> (i32, String) {
    let registry = dir.join("registry.json");
    std::fs::write(&registry, r#"{"shell": {"process": {"command": "/bin/true"}}}"#).expect("write registry");
    let out = Command::new(env!("CARGO_BIN_EXE_pop"))
        .arg("worker")
        .arg("--no-timed")
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--registry")
        .arg(&registry)
        .args(flags)
        // No cluster, whatever this machine has: a build with the k8s feature fails to configure a client.
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("POP_K8S_NAMESPACE")
        .output()
        .expect("run pop");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn wrong_namespace_flags_exit_2_naming_the_flag() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (flags, expected) in [
        (
            &["--runtime", "k8s", "--namespace-for", "customer:acme=Tenant_Acme"][..],
            r#"pop: --namespace-for "customer:acme=Tenant_Acme": "Tenant_Acme" is not a valid namespace name"#,
        ),
        (&["--runtime", "k8s", "--namespace-for", "acme=tenant-acme"], "expected customer:ID=NS or insight:ID=NS"),
        (
            &["--runtime", "k8s", "--namespace-per-customer", "Pop_"],
            r#"pop: --namespace-per-customer "Pop_": not a valid namespace prefix"#,
        ),
        (
            &["--runtime", "k8s", "--namespace-per-insight", "q-", "--namespace-for", "insight:a=b"],
            "--namespace-per-insight cannot be combined with --namespace-for",
        ),
        (&["--runtime", "k8s", "--namespace=-pop"], r#"pop: --namespace "-pop": not a valid namespace name"#),
        (&["--namespace-per-customer", "pop-"], "pop: --namespace-per-customer is for --runtime k8s"),
    ] {
        let (code, err) = worker(tmp.path(), flags);
        assert_eq!(code, 2, "{flags:?}: {err}");
        assert!(err.contains(expected), "{flags:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{flags:?}: one line: {err}");
    }
}

#[test]
fn valid_namespace_flags_get_past_the_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, err) = worker(
        tmp.path(),
        &[
            "--runtime",
            "k8s",
            "--namespace",
            "pop-shared",
            "--namespace-for",
            "customer:Acme Corp=tenant-acme",
            "--namespace-for",
            "insight:video=queue-video",
        ],
    );
    assert_eq!(code, 2, "{err}");
    // Without the feature the build says so; with it, there is no cluster to configure a client for.
    assert!(
        err.contains("built without the `k8s` feature") || err.contains("kubernetes client configuration"),
        "{err}"
    );
    assert!(!err.contains("namespace"), "the namespace flags were accepted: {err}");
}
