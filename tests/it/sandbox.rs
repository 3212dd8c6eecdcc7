//! The trust boundary, tried the way a hostile repository would: its build and `<run>` steps
//! look for the server's secrets, write into the data root, another queue's files and the
//! system, and connect to the server, all inside the real bubblewrap sandbox.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with, spawn_app_with_config};

use crate::worker::{SCENARIO_PASS, config, log_text, make_repo};

const LIMIT: Duration = Duration::from_secs(60);

/// A scenario whose one test runs `command` on the host side (XML-escaped here).
fn run_scenario(command: &str) -> String {
    let escaped = command
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        r#"<scenario name="attack">
  <suite name="host">
    <test name="attack" timeout="20"><run>{escaped}</run></test>
  </suite>
</scenario>
"#
    )
}

async fn enqueue(app: &TestApp, id: &str, repo: &Path) {
    let body = json!({
        "id": id, "repo": repo.display().to_string(), "branch": "main", "environment": "sim"
    });
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

#[tokio::test]
async fn run_and_build_steps_cannot_write_the_data_root_another_queue_or_the_system() {
    let dir = tempfile::tempdir().unwrap();
    let victim = make_repo(
        &dir.path().join("victim"),
        &[("scenarios/pass.xml", SCENARIO_PASS)],
    );
    let pwned = format!("/etc/testarena-pwned-{}", std::process::id());
    // The attacker knows where the data root is (the docs and the configuration say it): the
    // build and the <run> step each try to forge the other queue's report, drop a file in the
    // data root and in /etc, and list the data root.
    let attempts = |who: &str| {
        format!(
            "for target in \"$DATA_ROOT/queues/victim/report.html\" \"$DATA_ROOT/forged.txt\" {pwned}; do \
               if echo '<h1>passed</h1>' > \"$target\" 2>/dev/null; then echo {who}-\"WROTE $target\"; \
               else echo {who}-\"BLOCKED $target\"; fi; done; \
             ls -A \"$DATA_ROOT\" \"$DATA_ROOT/queues\" 2>/dev/null | sed 's/^/{who}-SEE/'"
        )
    };
    let attacker = make_repo(
        &dir.path().join("attacker"),
        &[("scenarios/attack.xml", &run_scenario(&attempts("RUN")))],
    );
    let build = format!("{}; echo built > built.txt", attempts("BUILD"));
    let app = spawn_app_with_config(&config(&build, "", ""), |c| {
        let root = c.root.display().to_string();
        for env in c.environments.values_mut() {
            env.env.insert("DATA_ROOT".into(), root.clone());
        }
    })
    .await;
    enqueue(&app, "victim", &victim).await;
    app.wait_status("victim", "passed", LIMIT).await;
    let report = app.root.join("queues/victim/report.html");
    let before = std::fs::read(&report).expect("the victim's report");

    enqueue(&app, "attacker", &attacker).await;
    app.wait_status("attacker", "passed", LIMIT).await;
    let log = log_text(&app, "attacker");
    for who in ["BUILD", "RUN"] {
        assert_eq!(
            log.matches(&format!("{who}-BLOCKED")).count(),
            3,
            "every write of the {who} step failed:\n{log}"
        );
        assert!(!log.contains(&format!("{who}-WROTE")), "{log}");
        // Of the data root, the step sees only the way to its own checkout.
        let seen: Vec<&str> = log
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{who}-SEE")))
            .collect();
        assert!(
            seen.iter()
                .all(|s| ["", "/tmp", "queues", "attacker"].contains(s) || s.ends_with(':')),
            "the data root is hidden: {seen:?}\n{log}"
        );
        assert!(seen.contains(&"attacker"), "{seen:?}");
    }
    assert_eq!(
        std::fs::read(&report).unwrap(),
        before,
        "the other queue's report is unchanged"
    );
    assert!(!app.root.join("forged.txt").exists());
    assert!(!Path::new(&pwned).exists());
    app.stop().await;
}

#[tokio::test]
async fn a_run_step_cannot_connect_to_the_server_but_a_build_may_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    // bash's /dev/tcp: a plain TCP connection, as any tool in the repository could make.
    let connect = |who: &str, port: u16| {
        format!(
            "if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo {who}-\"CONNECTED\"; \
             else echo {who}-\"NO-NETWORK\"; fi"
        )
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let repo = make_repo(
        dir.path(),
        &[("scenarios/attack.xml", &run_scenario(&connect("RUN", port)))],
    );
    let build = format!("{}; echo built > built.txt", connect("BUILD", port));
    let app = spawn_app_with(&config(&build, "", "")).await;
    enqueue(&app, "net-default", &repo).await;
    app.wait_status("net-default", "passed", LIMIT).await;
    let log = log_text(&app, "net-default");
    assert!(log.contains("RUN-NO-NETWORK"), "{log}");
    assert!(!log.contains("RUN-CONNECTED"), "{log}");
    assert!(
        log.contains("BUILD-CONNECTED"),
        "builds have the network by default:\n{log}"
    );
    app.stop().await;

    let app = spawn_app_with(&config(&build, "build_network = false", "")).await;
    enqueue(&app, "net-off", &repo).await;
    app.wait_status("net-off", "passed", LIMIT).await;
    let log = log_text(&app, "net-off");
    assert!(log.contains("BUILD-NO-NETWORK"), "{log}");
    assert!(!log.contains("BUILD-CONNECTED"), "{log}");
    drop(listener);
    app.stop().await;
}

#[tokio::test]
async fn without_bubblewrap_the_server_starts_says_so_and_every_queue_ends_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let marker = dir.path().join("the-build-ran");
    let build = format!("touch {}; echo built > built.txt", marker.display());
    let app = spawn_app_with_config(&config(&build, "", ""), |c| {
        c.sandbox.program = "/nonexistent/bwrap".into();
    })
    .await;
    enqueue(&app, "no-sandbox", &repo).await;
    let q = app.wait_status("no-sandbox", "error", LIMIT).await;
    let error = q["error"].as_str().unwrap_or_default();
    assert!(error.contains("apt-get install bubblewrap"), "{q:#}");
    assert!(error.contains("mode = \"none\""), "{q:#}");
    assert!(!marker.exists(), "no repository code ran");
    let page = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("sandbox-problem"), "{page}");
    assert!(page.contains("apt-get install bubblewrap"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn mode_none_runs_repository_code_unconfined_but_still_without_the_servers_variables() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.txt");
    let cmd = format!(
        "echo unconfined > {}; env | sed 's/^/EN''V /'",
        outside.display()
    );
    let repo = make_repo(dir.path(), &[("scenarios/attack.xml", &run_scenario(&cmd))]);
    let app = spawn_app_with(&config(
        "echo built > built.txt",
        "env = { BOARD_REV = \"b2\" }",
        "[sandbox]\nmode = \"none\"",
    ))
    .await;
    enqueue(&app, "unconfined", &repo).await;
    app.wait_status("unconfined", "passed", LIMIT).await;
    assert!(outside.exists(), "mode none writes where it likes");
    let log = log_text(&app, "unconfined");
    let env: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("ENV ")).collect();
    assert!(env.contains(&"BOARD_REV=b2"), "{env:?}");
    assert!(env.contains(&"TESTARENA_QUEUE_ID=unconfined"), "{env:?}");
    for name in env.iter().map(|kv| kv.split('=').next().unwrap()) {
        assert!(
            [
                "PATH",
                "HOME",
                "LANG",
                "TERM",
                "BOARD_REV",
                "TESTARENA_QUEUE_ID",
                "TESTARENA_ENVIRONMENT",
                "TESTARENA_REPO_DIR",
                // What sh itself sets.
                "PWD",
                "OLDPWD",
                "SHLVL",
                "_",
            ]
            .contains(&name),
            "{name} is not on the allow-list: {env:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_real_binary_gives_repository_code_none_of_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hook-secret-5b1f0c9e";
    let token = "status-token-77d2a4c1";
    let token_file = dir.path().join("gitea-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let token_file = token_file.display().to_string();
    // Everything the server's environment and configuration hold, printed by the build and
    // by a <run> step: its variables, every process's variables it can see, the token's file.
    let snoop = format!(
        "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; cat {token_file} 2>&1; \
         cat \"$CREDENTIALS_DIRECTORY\"/* 2>&1; echo SNOOP''ED"
    );
    let repo = make_repo(
        dir.path(),
        &[("scenarios/attack.xml", &run_scenario(&snoop))],
    );
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        config(&format!("{snoop}; echo built > built.txt"), "", "")
            + "\n[gitea]\nurl = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let root = dir.path().join("root");
    let server = crate::cli::start_with_env(
        &root,
        Some(&cfg),
        &[],
        std::process::Stdio::null(),
        &[
            ("TESTARENA_GITEA_SECRET", secret),
            ("TESTARENA_GITEA_TOKEN_FILE", &token_file),
            ("TESTARENA_WORKER_ALLOWED_REPOS", "/"),
        ],
    );
    let client = testarena::http_client().build().unwrap();
    let r = client
        .post(format!("http://{}/api/queues", server.addr))
        .json(&json!({
            "id": "snoop", "repo": repo.display().to_string(), "branch": "main", "environment": "sim"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    crate::cli::wait_status(&client, &server, "snoop", "passed").await;
    let log = client
        .get(format!("http://{}/api/queues/snoop/log", server.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(log.matches("SNOOPED").count(), 2, "both steps ran:\n{log}");
    assert!(log.contains("TESTARENA_QUEUE_ID=snoop"), "{log}");
    for leaked in [
        secret,
        token,
        "TESTARENA_ROOT",
        "TESTARENA_GITEA",
        "RUST_LOG=",
    ] {
        assert!(!log.contains(leaked), "{leaked} reached the log:\n{log}");
    }
}
