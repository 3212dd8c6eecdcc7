//! A board whose console is a Unix socket (QEMU `-serial unix:…,server=on,wait=on`) instead of
//! the simulator's stdin/stdout: the real firmware, the real QEMU.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn scenarios_run_over_a_unix_socket_console() {
    for tool in ["qemu-system-xtensa", "xtensa-lx106-elf-gcc"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "{tool} is missing: run scripts/test, which installs it"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("demo");
    let made = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/demo-repo.sh"
    ))
    .arg(&repo)
    .output()
    .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let app = spawn_app_with(
        r#"
[worker]
slots = 1
kill_grace = "1s"
[environments.xtensa-socket]
build = ["make"]
simulate = ["qemu-system-xtensa", "-M", "sim", "-cpu", "lx106", "-nodefaults", "-display", "none",
            "-semihosting", "-serial", "unix:console.sock,server=on,wait=on", "-kernel", "build/fw.elf"]
console = "unix:console.sock"
ready = "testarena-fw: READY"
build_timeout = "2m"
boot_timeout = "20s"
"#,
    )
    .await;
    let body = json!({"repo": repo.display().to_string(), "environment": "xtensa-socket",
                      "scenarios": ["scenarios/pass.xml", "scenarios/crash.xml"]});
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = app
        .wait_status(&id, "failed", Duration::from_secs(120))
        .await;
    assert_eq!(q["tasks"][0]["status"], "passed", "{q:#}");
    let crash = &q["tasks"][1];
    let statuses: Vec<&str> = crash["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "skipped"], "{q:#}");
    assert!(
        crash["tests"][1]["message"]
            .as_str()
            .unwrap()
            .contains("99"),
        "{q:#}"
    );
    let log = std::fs::read_to_string(app.root.join("queues").join(&id).join("queue.log")).unwrap();
    assert!(log.contains("TestArena demo firmware v1"), "{log}");
    app.stop().await;
}
