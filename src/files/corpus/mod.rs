//! From text on disk to a memory-mapped slice of token ids.
//!
//! - [`tokenize`]: word- and character-level tokenizers;
//! - [`vocab`]: the vocabulary and its file format;
//! - [`tokfile`]: the token file format, written atomically and opened without copying;
//! - [`prepare`] / [`Prepared::open`]: a directory of `vocab.txt` + `train.tok` (+ `valid.tok`,
//!   `test.tok`) made from text files, and opened again for training.
//!
//! ```
//! use rnnlm::files::corpus::{Level, Tokenizer, Unknown, Vocab};
//!
//! // Words, each line ending in <eos>, ids in order of first appearance (PTB's convention).
//! let words = Tokenizer { level: Level::Word, lowercase: false };
//! let mut vocab = Vocab::new();
//! let train = words.tokenize_growing("the cat sat\nthe end\n", &mut vocab, None);
//! assert_eq!(train, [0, 1, 2, 3, 0, 4, 3]);
//! assert_eq!(vocab.token(3), Some("<eos>"));
//! // Other splits use that vocabulary; an unknown word is an error unless mapped to <unk>.
//! assert!(words.tokenize_fixed("the dog\n", &vocab, Unknown::Reject, None).is_err());
//! ```

#[cfg(any(test, feature = "fuzzing"))]
pub mod properties;
pub mod tokenize;
pub mod tokfile;
pub mod vocab;

pub use tokenize::{Level, TokenizeError, Tokenizer, Unknown, EOS, UNK};
pub use tokfile::{FileError, FileErrorKind, Header, Ids, TokFileError, TokenFile};
pub use vocab::{Vocab, VocabError};

use crate::files::atomic_file;
use std::fmt;
use std::path::{Path, PathBuf};

/// File name of the vocabulary in a prepared directory.
pub const VOCAB_FILE: &str = "vocab.txt";

/// The three splits of a corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training split.
    Train,
    /// The validation split.
    Valid,
    /// The test split.
    Test,
}

impl Split {
    /// Every split, in the order train, valid, test.
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    /// `"train"`, `"valid"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }

    /// The token file name of this split in a prepared directory.
    pub fn tok_file(self) -> String {
        format!("{}.tok", self.name())
    }
}

/// What went wrong between a text file and its ids. Every variant names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum CorpusError {
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The text is not UTF-8 (line numbers start at 1).
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The line of the first invalid byte.
        line: usize,
        /// The offset of the first invalid byte in the file.
        byte_offset: usize,
    },
    /// The file has no bytes.
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no tokens (only whitespace, or `--corpus-size 0`).
    NoTokens {
        /// The file.
        path: PathBuf,
    },
    /// A valid/test token is not in the training vocabulary.
    Tokenize {
        /// The file.
        path: PathBuf,
        /// The tokenizer's error.
        source: TokenizeError,
    },
    /// A vocabulary file is malformed.
    Vocab {
        /// The file.
        path: PathBuf,
        /// The vocabulary's error.
        source: VocabError,
    },
    /// A token file is malformed.
    TokFile(FileError),
    /// A token file and a vocabulary file do not belong together.
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not match.
        what: String,
    },
}

impl fmt::Display for CorpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorpusError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CorpusError::NotUtf8 { path, line, byte_offset } => write!(
                f,
                "{}: not UTF-8 text (invalid byte at offset {byte_offset}, line {line}); convert it to UTF-8 first",
                path.display()
            ),
            CorpusError::EmptyFile { path } => write!(f, "{}: the file is empty", path.display()),
            CorpusError::NoTokens { path } => write!(f, "{}: the file holds no tokens", path.display()),
            CorpusError::Tokenize { path, source } => write!(f, "{}: {source}", path.display()),
            CorpusError::Vocab { path, source } => write!(f, "{}: {source}", path.display()),
            CorpusError::TokFile(e) => write!(f, "{e}"),
            CorpusError::Mismatch { path, what } => write!(f, "{}: {what}", path.display()),
        }
    }
}

impl std::error::Error for CorpusError {}

impl From<FileError> for CorpusError {
    fn from(e: FileError) -> Self {
        CorpusError::TokFile(e)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io { path: path.to_owned(), source }
}

/// The ids of a `vocab`-word vocabulary ranked by their count in `ids`, most frequent first,
/// ties by the smaller id: `order[rank] = id`, what an adaptive softmax ranks its classes by.
/// Ids of `ids` not below `vocab` are not counted.
pub fn frequency_order(ids: Ids<'_>, vocab: usize) -> Vec<u32> {
    let mut counts = vec![0u64; vocab];
    for i in 0..ids.len() {
        if let Some(count) = counts.get_mut(ids.get(i) as usize) {
            *count += 1;
        }
    }
    let mut order: Vec<u32> = (0..vocab as u32).collect();
    order.sort_by_key(|&id| (std::cmp::Reverse(counts[id as usize]), id));
    order
}

/// Reads a whole file.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, CorpusError> {
    std::fs::read(path).map_err(io_error(path))
}

/// Reads a UTF-8 text file; a file that is empty or not UTF-8 is an error naming it.
pub fn read_text(path: &Path) -> Result<String, CorpusError> {
    let bytes = read_bytes(path)?;
    if bytes.is_empty() {
        return Err(CorpusError::EmptyFile { path: path.to_owned() });
    }
    String::from_utf8(bytes).map_err(|e| {
        let byte_offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..byte_offset].iter().filter(|&&b| b == b'\n').count();
        CorpusError::NotUtf8 { path: path.to_owned(), line, byte_offset }
    })
}

/// Reads and parses a vocabulary file.
pub fn read_vocab(path: &Path) -> Result<(Vocab, u32), CorpusError> {
    let bytes = read_bytes(path)?;
    let vocab =
        Vocab::from_file_bytes(&bytes).map_err(|source| CorpusError::Vocab { path: path.to_owned(), source })?;
    Ok((vocab, crc32fast::hash(&bytes)))
}

/// What [`prepare`] reads and how.
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// The training text, which also builds the vocabulary.
    pub train: PathBuf,
    /// The validation text, if any.
    pub valid: Option<PathBuf>,
    /// The test text, if any.
    pub test: Option<PathBuf>,
    /// The directory to write the vocabulary and token files into.
    pub out: PathBuf,
    /// How text becomes tokens.
    pub tokenizer: Tokenizer,
    /// What to do with validation and test tokens the vocabulary lacks.
    pub unknown: Unknown,
    /// Keep only the first N tokens of each split.
    pub corpus_size: Option<usize>,
}

/// What [`prepare`] wrote.
#[derive(Clone, Debug)]
pub struct PrepareReport {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// The vocabulary file written.
    pub vocab_path: PathBuf,
    /// Split, token file, token count.
    pub splits: Vec<(Split, PathBuf, usize)>,
}

/// Tokenizes the text files of `options` and writes `vocab.txt` and one `.tok` file per split
/// into `options.out`. Every input is read and checked before anything is written, and every
/// output goes through a temporary file renamed into place, so a failure leaves no partial
/// output (and a missing, empty or non-UTF-8 input leaves no output at all).
pub fn prepare(options: &PrepareOptions) -> Result<PrepareReport, CorpusError> {
    let tokenizer = options.tokenizer;
    let sources: Vec<(Split, &PathBuf)> = [
        (Split::Train, Some(&options.train)),
        (Split::Valid, options.valid.as_ref()),
        (Split::Test, options.test.as_ref()),
    ]
    .into_iter()
    .filter_map(|(split, path)| path.map(|p| (split, p)))
    .collect();

    let mut vocab = Vocab::new();
    let mut tokenized = Vec::new();
    for &(split, path) in &sources {
        let text = read_text(path)?;
        let source_crc = crc32fast::hash(text.as_bytes());
        let ids = if split == Split::Train {
            tokenizer.tokenize_growing(&text, &mut vocab, options.corpus_size)
        } else {
            tokenizer
                .tokenize_fixed(&text, &vocab, options.unknown, options.corpus_size)
                .map_err(|source| CorpusError::Tokenize { path: path.clone(), source })?
        };
        if ids.is_empty() {
            return Err(CorpusError::NoTokens { path: path.clone() });
        }
        tokenized.push((split, ids, source_crc));
    }

    std::fs::create_dir_all(&options.out).map_err(io_error(&options.out))?;
    let vocab_text = vocab.to_file_text();
    let vocab_crc = crc32fast::hash(vocab_text.as_bytes());
    let vocab_path = options.out.join(VOCAB_FILE);
    let mut outputs = vec![(vocab_path.clone(), vocab_text.into_bytes())];
    let mut splits = Vec::new();
    for (split, ids, source_crc) in &tokenized {
        let path = options.out.join(split.tok_file());
        let bytes = tokfile::encode(ids, vocab.len() as u64, tokenizer.level, vocab_crc, *source_crc);
        outputs.push((path.clone(), bytes));
        splits.push((*split, path, ids.len()));
    }
    write_all_atomically(&outputs)?;
    Ok(PrepareReport { vocab_size: vocab.len(), vocab_path, splits })
}

/// Writes every file to a temporary file beside it first and renames them into place only
/// once all are written, so that a failure midway leaves the directory as it was.
fn write_all_atomically(outputs: &[(PathBuf, Vec<u8>)]) -> Result<(), CorpusError> {
    let mut staged = Vec::new();
    for (path, bytes) in outputs {
        staged.push((atomic_file::stage(path, bytes).map_err(io_error(path))?, path));
    }
    for (temp, path) in staged {
        atomic_file::commit(temp, path).map_err(io_error(path))?;
    }
    Ok(())
}

/// A prepared corpus directory, opened and cross-checked: every token file refers to this
/// vocabulary (by checksum) and has the same level.
pub struct Prepared {
    /// The directory.
    pub dir: PathBuf,
    /// The vocabulary every token file refers to.
    pub vocab: Vocab,
    /// Word or character level.
    pub level: Level,
    /// The training ids.
    pub train: TokenFile,
    /// The validation ids, if prepared.
    pub valid: Option<TokenFile>,
    /// The test ids, if prepared.
    pub test: Option<TokenFile>,
}

impl Prepared {
    /// Opens `dir/vocab.txt` and `dir/{train,valid,test}.tok` (valid and test if present).
    pub fn open(dir: &Path) -> Result<Prepared, CorpusError> {
        let vocab_path = dir.join(VOCAB_FILE);
        let (vocab, vocab_crc) = read_vocab(&vocab_path)?;
        let open = |split: Split| -> Result<Option<TokenFile>, CorpusError> {
            let path = dir.join(split.tok_file());
            if split != Split::Train && !path.exists() {
                return Ok(None);
            }
            let file = TokenFile::open(&path)?;
            check_against_vocab(&file, &vocab, vocab_crc, &vocab_path)?;
            Ok(Some(file))
        };
        let train = open(Split::Train)?.expect("the training split is required");
        let (valid, test) = (open(Split::Valid)?, open(Split::Test)?);
        let level = train.header().level;
        for file in valid.iter().chain(&test) {
            if file.header().level != level {
                return Err(CorpusError::Mismatch {
                    path: file.path().to_owned(),
                    what: format!("is {}-level but train.tok is {level}-level", file.header().level),
                });
            }
        }
        Ok(Prepared { dir: dir.to_owned(), vocab, level, train, valid, test })
    }

    /// The token file of `split`, if the corpus has it.
    pub fn split(&self, split: Split) -> Option<&TokenFile> {
        match split {
            Split::Train => Some(&self.train),
            Split::Valid => self.valid.as_ref(),
            Split::Test => self.test.as_ref(),
        }
    }
}

/// Checks that `file` was made with the vocabulary `vocab` (whose file has checksum
/// `vocab_crc`).
pub fn check_against_vocab(
    file: &TokenFile,
    vocab: &Vocab,
    vocab_crc: u32,
    vocab_path: &Path,
) -> Result<(), CorpusError> {
    let header = file.header();
    if header.vocab_crc != vocab_crc || header.vocab_size != vocab.len() as u64 {
        return Err(CorpusError::Mismatch {
            path: file.path().to_owned(),
            what: format!(
                "was not made with {} (vocabulary of {} tokens, checksum {:08x}; the token file expects {} tokens, checksum {:08x})",
                vocab_path.display(),
                vocab.len(),
                vocab_crc,
                header.vocab_size,
                header.vocab_crc
            ),
        });
    }
    Ok(())
}
