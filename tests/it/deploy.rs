//! The shipped deployment files against the real tools: `deploy/testarena.service` passes
//! `systemd-analyze verify` and rates "OK" or better in `systemd-analyze security`, without the
//! settings that would stop bubblewrap or QEMU; `deploy/nginx.conf` passes `nginx -t` with a
//! certificate of our own.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::require_tool;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} runs: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `text` with `from` replaced, which must be there.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is no longer in the file");
    text.replace(from, to)
}

/// The unit's settings that are in force (not commented out), as `Key=value`.
fn settings(unit: &str) -> Vec<&str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_and_rates_ok_while_bwrap_and_qemu_can_run() {
    let analyze = require_tool("systemd-analyze", "systemd");
    let unit = deploy_file("testarena.service");
    let active = settings(&unit);
    let has = |setting: &str| active.contains(&setting);
    for wanted in [
        "StateDirectory=testarena",
        "LimitNOFILE=65536",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "KillMode=mixed",
    ] {
        assert!(has(wanted), "{wanted} is not set");
    }
    // What would break the sandbox or the simulator: bubblewrap needs user, mount, pid and
    // network namespaces and mounts its own /proc (which needs /proc without mounts laid over
    // it); QEMU's TCG writes the code it runs.
    for key in [
        "RestrictNamespaces=",
        "PrivateUsers=",
        "MemoryDenyWriteExecute=",
        "ProtectKernelTunables=",
        "ProtectKernelLogs=",
        "ProtectProc=",
        "ProcSubset=",
        "PrivateDevices=",
    ] {
        assert!(
            !active.iter().any(|l| l.starts_with(key)),
            "{key} would stop bubblewrap or QEMU"
        );
    }
    let filter = active
        .iter()
        .find_map(|l| l.strip_prefix("SystemCallFilter="))
        .expect("a system call filter");
    assert!(
        !filter.contains("@mount") && !filter.contains("@privileged"),
        "bubblewrap mounts: {filter}"
    );

    // The copy runs the binary just built, and loads its credentials from files that exist.
    let dir = tempfile::tempdir().unwrap();
    for name in ["gitea-secret", "gitea-token"] {
        std::fs::write(dir.path().join(name), "s3cret\n").unwrap();
    }
    let mut copy = replaced(
        &unit,
        "ExecStart=/usr/local/bin/testarena ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_testarena")),
    );
    for name in ["gitea-secret", "gitea-token"] {
        copy = replaced(
            &copy,
            &format!("#LoadCredential={name}:/etc/testarena/{name}"),
            &format!("LoadCredential={name}:{}", dir.path().join(name).display()),
        );
    }
    let path = dir.path().join("testarena.service");
    std::fs::write(&path, copy).unwrap();

    let out = run(Command::new(&analyze).arg("verify").arg(&path));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.contains("testarena"),
        "systemd-analyze verify: {said}"
    );

    let out = run(Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path));
    let report = String::from_utf8_lossy(&out.stdout);
    let overall = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for testarena.service: "))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no overall exposure in:\n{report}"));
    let exposure: f64 = overall
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {overall:?}"));
    assert!(
        exposure < 5.0,
        "exposure {overall} (\"OK\" is below 5.0):\n{report}"
    );
}

#[test]
fn the_nginx_example_passes_nginx_t_with_tls_and_forwarded_headers() {
    let nginx = require_tool("nginx", "nginx");
    let openssl = require_tool("openssl", "openssl");
    let conf = deploy_file("nginx.conf");
    for wanted in [
        "proxy_buffering off;",
        "proxy_read_timeout 1h;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Host $host;",
        "listen 443 ssl",
    ] {
        assert!(
            conf.contains(wanted),
            "{wanted} is not in deploy/nginx.conf"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    run(Command::new(openssl)
        .args(["req", "-x509", "-nodes", "-days", "2", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-subj", "/CN=testarena.example.org", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let live = "/etc/letsencrypt/live/testarena.example.org";
    let site = replaced(
        &conf,
        &format!("{live}/fullchain.pem"),
        &cert.display().to_string(),
    );
    let site = replaced(
        &site,
        &format!("{live}/privkey.pem"),
        &key.display().to_string(),
    );
    std::fs::write(d.join("site.conf"), site).unwrap();
    // The example goes into the http context: a main file around it that writes only here.
    let p = |name: &str| d.join(name).display().to_string();
    let main = format!(
        "pid {};\nerror_log {};\nevents {{}}\nhttp {{\n    access_log off;\n    \
         client_body_temp_path {};\n    proxy_temp_path {};\n    fastcgi_temp_path {};\n    \
         uwsgi_temp_path {};\n    scgi_temp_path {};\n    include {};\n}}\n",
        p("nginx.pid"),
        p("error.log"),
        p("body"),
        p("proxy"),
        p("fastcgi"),
        p("uwsgi"),
        p("scgi"),
        p("site.conf"),
    );
    std::fs::write(d.join("main.conf"), main).unwrap();
    let out = run(Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-e")
        .arg(d.join("error.log"))
        .arg("-c")
        .arg(d.join("main.conf")));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("test is successful"), "nginx -t: {said}");
    assert!(!said.contains("[warn]"), "nginx -t: {said}");
}
