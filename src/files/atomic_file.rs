//! Writing files so that a failure never leaves a half-written file under the final name.
//!
//! Every output of rnnlm (token files, vocabularies, checkpoints, charts, downloads) is written to
//! a temporary file in the destination's directory, flushed to disk, and renamed over the final
//! name only once complete; a failed write removes the temporary file.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use tempfile::NamedTempFile;

/// The directory a file at `path` lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// An empty temporary file beside `path`, ending in `suffix` (some writers pick the format from
/// the extension). It is deleted when dropped unless [`commit`]ted.
pub fn temporary_beside(path: &Path, suffix: &str) -> io::Result<NamedTempFile> {
    tempfile::Builder::new().prefix(".rnnlm-").suffix(suffix).tempfile_in(parent_dir(path))
}

/// Gives a temporary file (created private, mode 0600) the permissions of an ordinary new file,
/// 0644, flushes it to disk and renames it over `path`.
pub fn commit(temp: NamedTempFile, path: &Path) -> io::Result<()> {
    make_readable(temp.as_file())?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `bytes` in a temporary file beside `path`, flushed, ready for [`commit`].
pub fn stage(path: &Path, bytes: &[u8]) -> io::Result<NamedTempFile> {
    let mut temp = temporary_beside(path, ".partial")?;
    temp.write_all(bytes)?;
    Ok(temp)
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    commit(stage(path, bytes)?, path)
}

fn make_readable(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}
