//! Where data lives: the data directory, the cache directory, and the Penn Treebank.
//!
//! Data directory: `--data DIR`, else `$RNNLM_DATA`, else `./data`; PTB lives in `<data>/ptb/`.
//! Cache directory (for prepared files when the data directory cannot be written):
//! `$RNNLM_CACHE`, else the platform's user cache directory plus `rnnlm`.

use crate::files::atomic_file;
use crate::files::corpus::{self, CorpusError, Level, PrepareOptions, Prepared, Split, Tokenizer, Unknown};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the textbook downloads PTB from.
pub const PTB_BASE_URL: &str = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/";

/// The PTB files and their SHA-256 sums.
pub const PTB_FILES: [(Split, &str, &str); 3] = [
    (Split::Train, "ptb.train.txt", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
    (Split::Valid, "ptb.valid.txt", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
    (Split::Test, "ptb.test.txt", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
];

/// The largest file a download accepts (PTB's training file is 5 MB).
const MAX_DOWNLOAD_BYTES: u64 = 64 << 20;

/// What can go wrong while finding, fetching or preparing data.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// A download failed.
    Download {
        /// What was fetched.
        url: String,
        /// Why it failed.
        why: String,
    },
    /// A file does not have the SHA-256 it must have.
    Checksum {
        /// The file.
        what: String,
        /// Its SHA-256.
        actual: String,
        /// The SHA-256 it must have.
        expected: String,
    },
    /// PTB is missing and could not be downloaded.
    PtbMissing {
        /// Where PTB was looked for.
        dir: PathBuf,
        /// Why it could not be downloaded.
        why: String,
    },
    /// Reading, writing or preparing a file failed.
    Corpus(CorpusError),
    /// Neither the data directory nor the cache directory can be written.
    NowhereToWrite {
        /// The directories tried.
        tried: Vec<PathBuf>,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Download { url, why } => write!(f, "cannot download {url}: {why}"),
            DataError::Checksum { what, actual, expected } => {
                write!(f, "{what} has SHA-256 {actual}, expected {expected}")
            }
            DataError::PtbMissing { dir, why } => write!(
                f,
                "the Penn Treebank is not in {} and could not be downloaded ({why}); put ptb.train.txt, \
                 ptb.valid.txt and ptb.test.txt (from {PTB_BASE_URL}) in {}, or point --data or RNNLM_DATA \
                 at a directory whose ptb/ holds them",
                dir.display(),
                dir.display()
            ),
            DataError::Corpus(e) => write!(f, "{e}"),
            DataError::NowhereToWrite { tried } => {
                let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "cannot write prepared files to any of {}; set RNNLM_CACHE to a writable directory",
                    tried.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for DataError {}

impl From<CorpusError> for DataError {
    fn from(e: CorpusError) -> Self {
        DataError::Corpus(e)
    }
}

/// The data directory: `flag`, else `$RNNLM_DATA`, else `./data`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_owned)
        .or_else(|| std::env::var_os("RNNLM_DATA").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// The cache directory: `$RNNLM_CACHE`, else `<user cache dir>/rnnlm`.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("RNNLM_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("rnnlm")))
}

/// The PTB download location: `flag`, else `$RNNLM_PTB_URL`, else [`PTB_BASE_URL`].
pub fn ptb_base_url(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("RNNLM_PTB_URL").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| PTB_BASE_URL.to_owned())
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Fetches `url` into memory (plain HTTP or HTTPS).
fn fetch(url: &str) -> Result<Vec<u8>, DataError> {
    let error = |why: String| DataError::Download { url: url.to_owned(), why };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .build();
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, response) => error(format!("the server answered {code} {}", response.status_text())),
        // The transport error's own text repeats the URL; keep what went wrong.
        ureq::Error::Transport(transport) => match transport.message() {
            Some(message) => error(format!("{}: {message}", transport.kind())),
            None => error(transport.kind().to_string()),
        },
    })?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_DOWNLOAD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(format!("the transfer broke off: {e}")))?;
    if bytes.len() as u64 > MAX_DOWNLOAD_BYTES {
        return Err(error(format!("the file is larger than {MAX_DOWNLOAD_BYTES} bytes")));
    }
    Ok(bytes)
}

/// Whether `path` exists and has SHA-256 `expected`; a file with another sum is an error.
fn verified(path: &Path, expected: &str) -> Result<bool, DataError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let actual = sha256_hex(&bytes);
            if actual == expected {
                Ok(true)
            } else {
                Err(DataError::Checksum {
                    what: format!("{} (remove it and rnnlm downloads a fresh copy)", path.display()),
                    actual,
                    expected: expected.to_owned(),
                })
            }
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(false),
        Err(source) => Err(CorpusError::Io { path: path.to_owned(), source }.into()),
    }
}

/// Downloads the PTB files that `dir` lacks from `base_url`, checking each against its
/// SHA-256 before writing it atomically; files already present are verified, not fetched
/// again. `log` receives one line per file. A file that fails its check is not written.
///
/// Directories this call creates are removed again if it fails, unless something else was
/// written into them meanwhile.
pub fn download_ptb(dir: &Path, base_url: &str, log: impl FnMut(&str)) -> Result<(), DataError> {
    removing_new_dirs_on_error(&[dir], || download_missing(dir, base_url, log))
}

/// [`download_ptb`] without the tidying up after a failure.
fn download_missing(dir: &Path, base_url: &str, mut log: impl FnMut(&str)) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|source| CorpusError::Io { path: dir.to_owned(), source })?;
    for (_, name, expected) in PTB_FILES {
        let path = dir.join(name);
        if verified(&path, expected)? {
            log(&format!("{} is present and verified", path.display()));
            continue;
        }
        let url = format!("{}/{name}", base_url.trim_end_matches('/'));
        log(&format!("downloading {url}"));
        let bytes = fetch(&url)?;
        let actual = sha256_hex(&bytes);
        if actual != expected {
            return Err(DataError::Checksum {
                what: format!("{url} (nothing was written)"),
                actual,
                expected: expected.to_owned(),
            });
        }
        atomic_file::write(&path, &bytes).map_err(|source| CorpusError::Io { path: path.clone(), source })?;
        log(&format!("wrote {} ({} bytes, SHA-256 verified)", path.display(), bytes.len()));
    }
    Ok(())
}

/// Runs `f`, which may create any of `dirs` and their missing parents. If it fails, the
/// directories that did not exist before are removed again, deepest first: a failed download
/// leaves no empty `data/ptb/` behind. A directory that is not empty stays (`remove_dir`
/// refuses it), so nothing written there by anyone is lost.
fn removing_new_dirs_on_error<T>(dirs: &[&Path], f: impl FnOnce() -> Result<T, DataError>) -> Result<T, DataError> {
    let mut missing: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|dir| dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()))
        .map(Path::to_path_buf)
        .collect();
    missing.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
    let result = f();
    if result.is_err() {
        for dir in &missing {
            // Best effort: failing to tidy up must not hide the error being returned.
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

/// Whether files can and may be created in `dir` (creating it if needed). A directory without
/// write permission bits counts as read-only even for root, who could write it anyway: it was
/// marked read-only on purpose (CI's shared data is).
fn writable(dir: &Path) -> bool {
    let marked_read_only = |d: &Path| std::fs::metadata(d).is_ok_and(|m| m.permissions().readonly());
    if marked_read_only(dir) || (!dir.exists() && dir.parent().is_some_and(marked_read_only)) {
        return false;
    }
    std::fs::create_dir_all(dir).is_ok() && atomic_file::temporary_beside(&dir.join("probe"), ".probe").is_ok()
}

/// Whether `dir` holds all three PTB files with their SHA-256 sums (a file with another sum is
/// an error, not a missing file).
fn holds_ptb(dir: &Path) -> Result<bool, DataError> {
    let mut all = true;
    for (_, name, expected) in PTB_FILES {
        all &= verified(&dir.join(name), expected)?;
    }
    Ok(all)
}

/// The directory holding the three verified PTB text files: `<data>/ptb/` when they are there;
/// otherwise they are downloaded from `base_url` (announced through `log`) into `<data>/ptb/`,
/// or into the cache directory when the data directory cannot be written.
pub fn ensure_ptb(data: &Path, base_url: &str, log: impl FnMut(&str)) -> Result<PathBuf, DataError> {
    let dir = data.join("ptb");
    if holds_ptb(&dir)? {
        return Ok(dir);
    }
    let cached = cache_dir().map(|c| c.join("ptb"));
    if let Some(cached) = &cached {
        if holds_ptb(cached)? {
            return Ok(cached.clone());
        }
    }
    let may_create: Vec<&Path> = std::iter::once(dir.as_path()).chain(cached.as_deref()).collect();
    removing_new_dirs_on_error(&may_create, || download_somewhere(&dir, cached.as_deref(), base_url, log))
}

/// Downloads PTB into `dir` if it can be written, else into `cached`; returns which.
fn download_somewhere(
    dir: &Path,
    cached: Option<&Path>,
    base_url: &str,
    mut log: impl FnMut(&str),
) -> Result<PathBuf, DataError> {
    let target = if writable(dir) {
        dir.to_path_buf()
    } else {
        cached.filter(|c| writable(c)).map(Path::to_path_buf).ok_or_else(|| DataError::PtbMissing {
            dir: dir.to_path_buf(),
            why: "neither it nor the cache directory can be written".into(),
        })?
    };
    log(&format!("the Penn Treebank is not in {}; downloading it into {}", dir.display(), target.display()));
    download_missing(&target, base_url, log).map_err(|e| match e {
        DataError::Download { url, why } => {
            DataError::PtbMissing { dir: dir.to_path_buf(), why: format!("{url}: {why}") }
        }
        other => other,
    })?;
    Ok(target)
}

/// Whether the prepared directory `dir` is complete and was made from exactly the PTB files
/// in `source_dir`.
fn prepared_matches(dir: &Path, source_dir: &Path) -> bool {
    let Ok(prepared) = Prepared::open(dir) else { return false };
    if prepared.level != Level::Word {
        return false;
    }
    PTB_FILES.iter().all(|&(split, name, _)| {
        let Some(file) = prepared.split(split) else { return false };
        std::fs::read(source_dir.join(name)).is_ok_and(|bytes| crc32fast::hash(&bytes) == file.header().source_crc)
    })
}

/// Prepares PTB at word level from the verified text files in `source_dir` into `out`.
pub fn prepare_ptb(source_dir: &Path, out: &Path) -> Result<corpus::PrepareReport, DataError> {
    let path = |split: Split| source_dir.join(PTB_FILES.iter().find(|f| f.0 == split).expect("every split").1);
    let options = PrepareOptions {
        train: path(Split::Train),
        valid: Some(path(Split::Valid)),
        test: Some(path(Split::Test)),
        out: out.to_owned(),
        tokenizer: Tokenizer { level: Level::Word, lowercase: false },
        unknown: Unknown::Reject,
        corpus_size: None,
    };
    Ok(corpus::prepare(&options)?)
}

/// The directory of prepared PTB token files (`vocab.txt`, `train.tok`, `valid.tok`,
/// `test.tok`), making them when needed: reused from `<data>/ptb/` or the cache while the
/// source files are unchanged, otherwise prepared into `<data>/ptb/`, or into the cache when
/// the data directory cannot be written. Downloads PTB first if it is missing.
pub fn prepared_ptb(data: &Path, base_url: &str, mut log: impl FnMut(&str)) -> Result<PathBuf, DataError> {
    let source_dir = ensure_ptb(data, base_url, &mut log)?;
    prepared_ptb_from(&source_dir, log)
}

/// The directory of prepared PTB token files for the three PTB text files in `source_dir`
/// (checked against their SHA-256), made when needed as [`prepared_ptb`] makes them: beside
/// the text files, else in the cache.
pub fn prepared_ptb_from(source_dir: &Path, mut log: impl FnMut(&str)) -> Result<PathBuf, DataError> {
    if !holds_ptb(source_dir)? {
        return Err(DataError::PtbMissing {
            dir: source_dir.to_owned(),
            why: "it does not hold ptb.train.txt, ptb.valid.txt and ptb.test.txt".into(),
        });
    }
    let source_dir = source_dir.to_owned();
    let mut candidates = vec![source_dir.clone()];
    if let Some(cache) = cache_dir() {
        candidates.push(cache.join("ptb"));
    }
    if let Some(dir) = candidates.iter().find(|dir| prepared_matches(dir, &source_dir)) {
        return Ok(dir.clone());
    }
    let out =
        candidates.iter().find(|dir| writable(dir)).ok_or(DataError::NowhereToWrite { tried: candidates.clone() })?;
    log(&format!("preparing token files from {} into {}", source_dir.display(), out.display()));
    prepare_ptb(&source_dir, out)?;
    Ok(out.clone())
}

/// Prepared token files for an arbitrary text file, made in the cache directory the first time
/// (`<cache>/text/<file name>-<checksum>-<level>[-lower]/`) and reused while the text is
/// unchanged, so that training always reads a memory-mapped token file.
pub fn prepared_text(file: &Path, tokenizer: Tokenizer, mut log: impl FnMut(&str)) -> Result<PathBuf, DataError> {
    let text = corpus::read_text(file)?;
    let crc = crc32fast::hash(text.as_bytes());
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "text".into());
    let key = format!("{name}-{crc:08x}-{}{}", tokenizer.level, if tokenizer.lowercase { "-lower" } else { "" });
    let cache = cache_dir().ok_or(DataError::NowhereToWrite { tried: Vec::new() })?;
    let dir = cache.join("text").join(key);
    if let Ok(prepared) = Prepared::open(&dir) {
        if prepared.train.header().source_crc == crc && prepared.level == tokenizer.level {
            return Ok(dir);
        }
    }
    if !writable(&dir) {
        return Err(DataError::NowhereToWrite { tried: vec![dir] });
    }
    log(&format!("preparing {} ({}-level) into {}", file.display(), tokenizer.level, dir.display()));
    let options = PrepareOptions {
        train: file.to_owned(),
        valid: None,
        test: None,
        out: dir.clone(),
        tokenizer,
        unknown: Unknown::Reject,
        corpus_size: None,
    };
    corpus::prepare(&options)?;
    Ok(dir)
}
