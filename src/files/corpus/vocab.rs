//! The vocabulary: tokens in id order, and its text file.
//!
//! File format: UTF-8 text, one token per line, the token on line `i + 1` has id `i`. So that
//! any token fits on one line (character-level vocabularies hold the newline and space
//! characters), four characters are escaped with a backslash: `\\` is a backslash, `\n` a
//! newline, `\r` a carriage return and `\t` a tab. Every other character, space included, stands
//! for itself. The file ends with a newline after the last token.

use std::collections::HashMap;
use std::fmt;

/// Tokens in id order, with the reverse map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

/// Why a vocabulary file was rejected. Line numbers start at 1.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VocabError {
    /// The file is not valid UTF-8.
    InvalidUtf8 {
        /// The line (from 1).
        line: usize,
    },
    /// A line holds no token.
    EmptyToken {
        /// The line (from 1).
        line: usize,
    },
    /// A token appears twice.
    Duplicate {
        /// The line (from 1).
        line: usize,
        /// The line where the token first appears.
        first_line: usize,
        /// The token.
        token: String,
    },
    /// A backslash is followed by something other than `\`, `n`, `r`, `t`, or ends the line.
    BadEscape {
        /// The line (from 1).
        line: usize,
    },
    /// A raw carriage return (the file was probably saved with Windows line ends).
    RawCarriageReturn {
        /// The line (from 1).
        line: usize,
    },
    /// The file holds no token at all.
    Empty,
    /// More tokens than ids fit in 32 bits.
    TooLarge,
}

impl fmt::Display for VocabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VocabError::InvalidUtf8 { line } => write!(f, "line {line} is not valid UTF-8"),
            VocabError::EmptyToken { line } => write!(f, "line {line} is empty (every line must hold one token)"),
            VocabError::Duplicate { line, first_line, token } => {
                write!(f, "line {line} repeats the token {token:?} of line {first_line}")
            }
            VocabError::BadEscape { line } => {
                write!(f, "line {line} has a backslash that is not one of \\\\, \\n, \\r, \\t")
            }
            VocabError::RawCarriageReturn { line } => {
                write!(
                    f,
                    "line {line} contains a raw carriage return (write it as \\r; Windows line ends are not accepted)"
                )
            }
            VocabError::Empty => write!(f, "the vocabulary holds no tokens"),
            VocabError::TooLarge => write!(f, "the vocabulary has more than 2^32 tokens"),
        }
    }
}

impl std::error::Error for VocabError {}

impl Vocab {
    /// An empty vocabulary.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `token`, adding it with the next id if it is new.
    pub fn intern(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        let id = u32::try_from(self.tokens.len()).expect("a vocabulary of more than 2^32 tokens");
        self.tokens.push(token.to_owned());
        self.ids.insert(token.to_owned(), id);
        id
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The token with id `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary has no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Tokens in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The first `len` tokens (ids `0..len`), as when a corpus is cut short.
    pub fn truncated(&self, len: usize) -> Vocab {
        let mut vocab = Vocab::new();
        for token in self.tokens.iter().take(len) {
            vocab.intern(token);
        }
        vocab
    }

    /// The file text (see the module documentation for the escapes).
    pub fn to_file_text(&self) -> String {
        let mut text = String::new();
        for token in &self.tokens {
            for c in token.chars() {
                match c {
                    '\\' => text.push_str("\\\\"),
                    '\n' => text.push_str("\\n"),
                    '\r' => text.push_str("\\r"),
                    '\t' => text.push_str("\\t"),
                    c => text.push(c),
                }
            }
            text.push('\n');
        }
        text
    }

    /// Parses a vocabulary file's bytes.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Vocab, VocabError> {
        let text = std::str::from_utf8(bytes).map_err(|e| VocabError::InvalidUtf8 {
            line: 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
        })?;
        let body = text.strip_suffix('\n').unwrap_or(text);
        if body.is_empty() {
            return Err(VocabError::Empty);
        }
        let mut vocab = Vocab::new();
        for (index, raw) in body.split('\n').enumerate() {
            let line = index + 1;
            if raw.is_empty() {
                return Err(VocabError::EmptyToken { line });
            }
            let token = unescape(raw, line)?;
            if let Some(first) = vocab.id(&token) {
                return Err(VocabError::Duplicate { line, first_line: first as usize + 1, token });
            }
            if vocab.len() > u32::MAX as usize {
                return Err(VocabError::TooLarge);
            }
            vocab.intern(&token);
        }
        Ok(vocab)
    }
}

fn unescape(raw: &str, line: usize) -> Result<String, VocabError> {
    let mut token = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => token.push(match chars.next() {
                Some('\\') => '\\',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                _ => return Err(VocabError::BadEscape { line }),
            }),
            '\r' => return Err(VocabError::RawCarriageReturn { line }),
            c => token.push(c),
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let mut vocab = Vocab::new();
        for token in ["a", " ", "\n", "\\", "\\n", "\r\t", "日本", "e\u{301}", "<eos>"] {
            vocab.intern(token);
        }
        let text = vocab.to_file_text();
        assert_eq!(text.lines().count(), vocab.len());
        assert_eq!(Vocab::from_file_bytes(text.as_bytes()).unwrap(), vocab);
    }

    #[test]
    fn each_malformed_file_gets_its_error() {
        let cases: [(&[u8], VocabError); 7] = [
            (b"a\nb\na\n", VocabError::Duplicate { line: 3, first_line: 1, token: "a".into() }),
            (b"a\n\nb\n", VocabError::EmptyToken { line: 2 }),
            (b"a\nb\xff\n", VocabError::InvalidUtf8 { line: 2 }),
            (b"a\\x\n", VocabError::BadEscape { line: 1 }),
            (b"a\nb\\\n", VocabError::BadEscape { line: 2 }),
            (b"a\r\nb\r\n", VocabError::RawCarriageReturn { line: 1 }),
            (b"", VocabError::Empty),
        ];
        for (bytes, want) in cases {
            assert_eq!(Vocab::from_file_bytes(bytes), Err(want), "{:?}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(Vocab::from_file_bytes(b"\n"), Err(VocabError::Empty));
    }

    #[test]
    fn last_newline_is_optional() {
        assert_eq!(Vocab::from_file_bytes(b"x\ny").unwrap().tokens(), &["x", "y"]);
    }
}
