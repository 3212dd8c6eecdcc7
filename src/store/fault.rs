//! Storage faults and the way back from them. A commit that fails (the disk is full, an I/O
//! error) fails the writes of its batch with an error that names the cause; redb then refuses
//! every later write until the file is closed and opened again, so the writer reopens it
//! ([`DbSlot::reopen`]) before the next batch. Once space is back, writes succeed again
//! without a restart. Until then [`Health`] holds the cause: `/healthz` answers 503 with it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use super::StoreError;

/// The open database, replaceable by the writer after a storage fault. Readers take a clone
/// of the `Arc` for one read.
pub(super) struct DbSlot {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
}

impl DbSlot {
    pub fn new(path: &Path, db: Arc<Database>) -> DbSlot {
        DbSlot {
            path: path.to_owned(),
            db: RwLock::new(Some(db)),
        }
    }

    /// The database, or why there is none just now (it is being reopened after a fault).
    pub fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Storage {
                message: "the store is being reopened after a storage error; try again".into(),
                full: false,
            })
    }

    /// Closes the database and opens it again. Waits (bounded) for reads that hold it; on
    /// failure the slot stays empty and the next batch tries again.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let old = self.db.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut db) = old {
            // Reads hold the database for one read each: they end soon.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        db = shared;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(shared) => {
                        // Still in use: put it back rather than lose it.
                        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(shared);
                        return Err(StoreError::Other(
                            "cannot reopen the store: reads still hold it".into(),
                        ));
                    }
                }
            }
        }
        let db = Database::create(&self.path).map_err(StoreError::from)?;
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
        tracing::info!(path = %self.path.display(), "store reopened after a storage error");
        Ok(())
    }
}

/// The last storage fault, until a commit succeeds again; watchable.
pub(super) struct Health {
    fault: tokio::sync::watch::Sender<Option<StoreError>>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            fault: tokio::sync::watch::Sender::new(None),
        }
    }
}

impl Health {
    pub fn failed(&self, e: &StoreError) {
        self.fault.send_replace(Some(e.clone()));
    }

    pub fn recovered(&self) {
        // Only a change wakes watchers.
        let was = self.fault.send_if_modified(|f| f.take().is_some());
        if was {
            tracing::info!("store: writes succeed again");
        }
    }

    pub fn fault(&self) -> Option<StoreError> {
        self.fault.borrow().clone()
    }

    pub fn watch(&self) -> tokio::sync::watch::Receiver<Option<StoreError>> {
        self.fault.subscribe()
    }
}

/// A storage error as the store reports it: `full` when the disk has no space left.
pub(super) fn storage(e: &std::io::Error) -> StoreError {
    let full = e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(libc::ENOSPC)
        || e.raw_os_error() == Some(libc::EDQUOT);
    StoreError::Storage {
        message: e.to_string(),
        full,
    }
}

/// The I/O error inside a redb storage error, or the error as a store error.
pub(super) fn from_storage(e: redb::StorageError) -> StoreError {
    match e {
        redb::StorageError::Io(io) => storage(&io),
        redb::StorageError::PreviousIo => StoreError::Storage {
            message: "an earlier write failed; the store is reopening".into(),
            full: false,
        },
        e => StoreError::Other(e.to_string()),
    }
}
