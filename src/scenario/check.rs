//! `testarena check FILE...`: validates scenario files and reports what it found.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::parse_file;

/// Parses every file; returns the report to print and whether all files are valid.
///
/// Each problem is one `file:line:column: message` line; a valid file gives one summary line,
/// e.g. `scenarios/pass.xml: ok — scenario "smoke", 2 suites, 5 tests`.
pub fn check_files(paths: &[PathBuf]) -> (String, bool) {
    let mut out = String::new();
    let mut all_ok = true;
    for path in paths {
        match parse_file(path) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "{}: ok — scenario {:?}, {}, {}",
                    path.display(),
                    s.name,
                    plural(s.suites.len(), "suite"),
                    plural(s.test_count(), "test")
                );
            }
            Err(diags) => {
                all_ok = false;
                for d in diags {
                    let _ = writeln!(out, "{d}");
                }
            }
        }
    }
    (out, all_ok)
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_good_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.xml");
        std::fs::write(
            &good,
            r#"<scenario name="smoke"><suite name="s"><test name="t"><send>x</send></test></suite></scenario>"#,
        )
        .unwrap();
        let bad = dir.path().join("bad.xml");
        std::fs::write(&bad, "<scenario name=\"x\">\n  <suite/>\n</scenario>\n").unwrap();
        let missing = dir.path().join("missing.xml");

        let (out, ok) = check_files(std::slice::from_ref(&good));
        assert!(ok);
        assert_eq!(
            out,
            format!(
                "{}: ok — scenario \"smoke\", 1 suite, 1 test\n",
                good.display()
            )
        );

        let (out, ok) = check_files(&[good.clone(), bad.clone(), missing.clone()]);
        assert!(!ok);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains(": ok — "), "{out}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{}:2:3: <suite> needs a name", bad.display()))),
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{}:1:1: cannot read", missing.display()))),
            "{out}"
        );
    }

    #[test]
    fn refuses_links_and_oversized_files_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("passwd.xml");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let big = dir.path().join("big.xml");
        let mut text = String::from("<scenario name=\"big\"><!--");
        text.push_str(&"secret ".repeat(200_000));
        text.push_str("--></scenario>");
        std::fs::write(&big, text).unwrap();

        let (out, ok) = check_files(&[link.clone(), big.clone()]);
        assert!(!ok);
        assert_eq!(
            out,
            format!(
                "{}:1:1: is a symbolic link; scenario files must be regular files inside the repository\n\
                 {}:1:1: is larger than 1 MiB (1048576 bytes); scenario files must be at most 1 MiB\n",
                link.display(),
                big.display()
            )
        );
    }
}
