//! Run claims across processes: an exclusive advisory lock on `<store>.claims/<run>.lock`
//! (`flock` on Unix, `LockFileEx` on Windows) held for as long as one process drives the
//! run. The operating system drops the lock when its holder exits, however it exits, so a
//! killed process never leaves a run claimed and `resume` can pick it up at once; while the
//! holder lives, any other process (or another store handle in the same process) is refused.
//!
//! The lock file is removed when the claim is released. A holder that removed its file may
//! race a claimer that opened it just before: after locking, the claimer checks that the
//! path still names the file it locked (same device and inode) and starts over if not.
//! A process killed while holding a claim leaves its (unlocked) file behind; the next claim
//! of that run takes it over and removes it on release.
//!
//! An in-memory store grants every claim (it cannot be shared between processes).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use executus::RunId;
use executus::ports::{PortError, RunClaim};

use super::PORT;

/// The folder holding the claims of the database at `location`, or `None` in memory.
pub(super) fn claims_dir(location: &str) -> Option<PathBuf> {
    if location == ":memory:" {
        return None;
    }
    let mut name = Path::new(location).file_name()?.to_os_string();
    name.push(".claims");
    Some(Path::new(location).with_file_name(name))
}

/// A held claim: the locked file, removed when dropped.
struct LockFile {
    path: PathBuf,
    file: File,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Removed while still locked, so nobody can lock this inode in between; the lock
        // itself goes with the handle right after.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Claims `run` in `dir` (blocking file system calls: run it on the blocking pool).
pub(super) fn claim(dir: &Path, run: RunId) -> Result<Option<RunClaim>, PortError> {
    let backend = |what: &str, e: std::io::Error| PortError::Backend {
        port: PORT,
        message: format!("claiming run {run}: {what} in {}: {e}", dir.display()),
    };
    std::fs::create_dir_all(dir).map_err(|e| backend("creating the claims folder", e))?;
    let path = dir.join(format!("{run}.lock"));
    // Two rounds at most lose the race described in the module docs.
    for _ in 0..4 {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| backend("opening the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(backend("locking the lock file", e)),
        }
        if same_file(&file, &path) {
            return Ok(Some(RunClaim::new(LockFile { path, file })));
        }
    }
    Ok(None)
}

/// Does `path` still name the file `file` has open?
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Does `path` still name the file `file` has open? (Windows does not let a file with an
/// open handle be removed by default, so the race cannot happen there.)
#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}
