//! The shared-root check: a step of a short allocation reads back a marker the server wrote
//! under the data root.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::{Limits, Spec, Stream, run};
use super::{Slurm, SlurmError, query, srun_error};

impl Slurm {
    /// Checks that the Slurm nodes see the data root as the server does: writes a marker with a
    /// random token under `root`, reads it back from a step of a short allocation, compares.
    pub async fn verify_shared_root(
        &self,
        root: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), SlurmError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| SlurmError::NotShared(e.to_string()))?;
        let token = hex::encode(bytes);
        let marker = root.join(format!(".testarena-shared-{token}"));
        tokio::fs::write(&marker, &token)
            .await
            .map_err(|e| SlurmError::NotShared(format!("{}: {e}", marker.display())))?;
        let result = self.read_back(root, &marker, cancel).await;
        let _ = tokio::fs::remove_file(&marker).await;
        let seen = result?;
        if seen.trim() == token {
            Ok(())
        } else {
            Err(SlurmError::NotShared(format!(
                "a step read {:?} from {}, where the server wrote {token:?}; mount the data root \
                 at the same path on every node",
                seen.trim(),
                marker.display()
            )))
        }
    }

    async fn read_back(
        &self,
        root: &Path,
        marker: &Path,
        cancel: &CancellationToken,
    ) -> Result<String, SlurmError> {
        let name = "testarena/shared-root-check";
        let alloc = self
            .allocate(name, Duration::from_secs(60), cancel, |_| {})
            .await?;
        let cat = Spec::new(
            vec!["cat".into(), marker.to_string_lossy().into_owned()],
            root,
        );
        let spec = self.step(&alloc, cat, &format!("{name}/read"), None);
        let limits = Limits {
            timeout: Some(self.command_timeout),
            ..Limits::default()
        };
        let mut seen = String::new();
        let mut errors = Vec::new();
        let ran = run(&spec, &limits, cancel, |line| match line.stream {
            Stream::Stdout => seen.push_str(&line.text),
            Stream::Stderr => errors.push(line.text),
        })
        .await;
        self.release(alloc).await?;
        match ran {
            Ok(ending) if ending.success() => Ok(seen),
            Ok(ending) => {
                let detail = format!("{ending}: {}", errors.join("; "));
                Err(match errors.iter().find_map(|l| srun_error(l)) {
                    Some(e) => e,
                    None => SlurmError::NotShared(format!(
                        "a step could not read {}: {detail}",
                        marker.display()
                    )),
                })
            }
            Err(e) => Err(query::not_installed(e)),
        }
    }
}
