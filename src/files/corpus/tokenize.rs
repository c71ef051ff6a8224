//! Word- and character-level tokenizers.
//!
//! Word level, Penn Treebank style: every `\n` becomes the token `<eos>` and the rest is split on
//! (Unicode) whitespace, exactly as `text.replace("\n", " <eos> ").split()` in Python.
//! Character level: one token per Unicode scalar value, optionally lower-cased first.
//! Ids follow first appearance in the text that builds the vocabulary (the training split);
//! other splits reuse it.

use super::vocab::Vocab;
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

/// The end-of-line token of word-level corpora.
pub const EOS: &str = "<eos>";
/// The unknown-word token that [`Unknown::MapToUnk`] maps missing words to.
pub const UNK: &str = "<unk>";

/// Token granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Whitespace-separated words, with `<eos>` for each line end.
    Word,
    /// Unicode scalar values.
    Char,
}

impl Level {
    /// `"word"` or `"char"`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Word => "word",
            Level::Char => "char",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "word" => Ok(Level::Word),
            "char" => Ok(Level::Char),
            other => Err(format!("unknown level {other:?} (expected \"word\" or \"char\")")),
        }
    }
}

/// How a tokenizer splits text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tokenizer {
    /// Word or character level.
    pub level: Level,
    /// Lower-case the text first, line by line, as `str::to_lowercase` does: one character may
    /// become several, and a capital sigma at the end of a word becomes `ς`, elsewhere `σ`. (A
    /// line break ends a word for that rule, so lines give the same result as the whole text.)
    pub lowercase: bool,
}

/// What to do with a token that the vocabulary does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// It is an error.
    Reject,
    /// Map it to `<unk>`, which the vocabulary must hold.
    MapToUnk,
}

/// Why a text could not be turned into ids with a fixed vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenizeError {
    /// A token is missing from the vocabulary (line numbers start at 1).
    UnknownToken {
        /// The token.
        token: String,
        /// Its line (from 1).
        line: usize,
    },
    /// Unknown tokens were to become `<unk>`, but the vocabulary has no `<unk>`.
    NoUnkToken,
}

impl fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizeError::UnknownToken { token, line } => write!(
                f,
                "line {line}: the token {token:?} is not in the training vocabulary (map such tokens to {UNK} with --unk)"
            ),
            TokenizeError::NoUnkToken => write!(f, "unknown tokens were to become {UNK}, but the vocabulary has no {UNK}"),
        }
    }
}

impl std::error::Error for TokenizeError {}

impl Tokenizer {
    /// Calls `f(token, line)` for every token of `text` in order (lines start at 1) until `f`
    /// breaks.
    pub fn for_each_token<B>(&self, text: &str, mut f: impl FnMut(&str, usize) -> ControlFlow<B>) -> ControlFlow<B> {
        // A line break becomes `<eos>` between words, itself between characters.
        let line_break = match self.level {
            Level::Word => EOS,
            Level::Char => "\n",
        };
        let mut buffer = [0u8; 4];
        let mut lines = text.split('\n').enumerate().peekable();
        while let Some((index, line)) = lines.next() {
            let lowered;
            let line = if self.lowercase {
                lowered = line.to_lowercase();
                &lowered
            } else {
                line
            };
            match self.level {
                Level::Word => {
                    for word in line.split_whitespace() {
                        f(word, index + 1)?;
                    }
                }
                Level::Char => {
                    for c in line.chars() {
                        f(c.encode_utf8(&mut buffer), index + 1)?;
                    }
                }
            }
            if lines.peek().is_some() {
                f(line_break, index + 1)?;
            }
        }
        ControlFlow::Continue(())
    }

    /// The ids of the first `limit` (all, if `None`) tokens of `text`, adding new tokens to
    /// `vocab` in order of first appearance: how the training split builds the vocabulary.
    pub fn tokenize_growing(&self, text: &str, vocab: &mut Vocab, limit: Option<usize>) -> Vec<u32> {
        let mut ids = Vec::new();
        let limit = limit.unwrap_or(usize::MAX);
        if limit > 0 {
            let _ = self.for_each_token(text, |token, _| {
                ids.push(vocab.intern(token));
                if ids.len() == limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
        }
        ids
    }

    /// The ids of the first `limit` tokens of `text` in a fixed vocabulary.
    pub fn tokenize_fixed(
        &self,
        text: &str,
        vocab: &Vocab,
        unknown: Unknown,
        limit: Option<usize>,
    ) -> Result<Vec<u32>, TokenizeError> {
        let unk = match unknown {
            Unknown::Reject => None,
            Unknown::MapToUnk => Some(vocab.id(UNK).ok_or(TokenizeError::NoUnkToken)?),
        };
        let mut ids = Vec::new();
        let limit = limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(ids);
        }
        // Break(None): the limit is reached; Break(Some(error)): a token is unknown.
        let flow = self.for_each_token(text, |token, line| {
            match vocab.id(token).or(unk) {
                Some(id) => ids.push(id),
                None => return ControlFlow::Break(Some(TokenizeError::UnknownToken { token: token.to_owned(), line })),
            }
            if ids.len() == limit {
                ControlFlow::Break(None)
            } else {
                ControlFlow::Continue(())
            }
        });
        match flow {
            ControlFlow::Break(Some(error)) => Err(error),
            ControlFlow::Break(None) | ControlFlow::Continue(()) => Ok(ids),
        }
    }

    /// Text from ids: the inverse of tokenizing. Character level concatenates the tokens, so
    /// `detokenize(tokenize(text)) == text` (lower-cased when the tokenizer lower-cases). Word
    /// level writes `<eos>` as a line end and separates words by one space, so tokenizing the
    /// result gives the same ids back.
    pub fn detokenize(&self, ids: impl IntoIterator<Item = u32>, vocab: &Vocab) -> String {
        let mut text = String::new();
        let mut line_start = true;
        for id in ids {
            let token = vocab.token(id).unwrap_or(UNK);
            match self.level {
                Level::Char => text.push_str(token),
                Level::Word if token == EOS => {
                    text.push('\n');
                    line_start = true;
                }
                Level::Word => {
                    if !line_start {
                        text.push(' ');
                    }
                    text.push_str(token);
                    line_start = false;
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORD: Tokenizer = Tokenizer { level: Level::Word, lowercase: false };
    const CHAR: Tokenizer = Tokenizer { level: Level::Char, lowercase: false };

    /// The spec's definition, literally.
    fn spec_words(text: &str) -> Vec<String> {
        text.replace('\n', " <eos> ").split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn word_level_is_the_spec_definition() {
        for text in [" aer banknote \n berlitz\n", "a\n\nb", "", "\n", "x\ty\r\nz \u{3000}w", "end"] {
            let mut vocab = Vocab::new();
            let ids = WORD.tokenize_growing(text, &mut vocab, None);
            let words: Vec<String> = ids.iter().map(|&id| vocab.token(id).unwrap().to_owned()).collect();
            assert_eq!(words, spec_words(text), "{text:?}");
        }
    }

    #[test]
    fn ids_follow_first_appearance_and_limits_cut() {
        let mut vocab = Vocab::new();
        let ids = WORD.tokenize_growing("b a b c\na", &mut vocab, None);
        assert_eq!(ids, vec![0, 1, 0, 2, 3, 1]);
        assert_eq!(vocab.tokens(), &["b", "a", "c", EOS]);
        let mut vocab = Vocab::new();
        assert_eq!(WORD.tokenize_growing("b a b c\na", &mut vocab, Some(3)), vec![0, 1, 0]);
        assert_eq!(vocab.len(), 2);
    }

    #[test]
    fn fixed_vocabulary_names_the_unknown_word_and_line() {
        let mut vocab = Vocab::new();
        WORD.tokenize_growing("a b\nc", &mut vocab, None);
        let error = WORD.tokenize_fixed("a\nb d a", &vocab, Unknown::Reject, None).unwrap_err();
        assert_eq!(error, TokenizeError::UnknownToken { token: "d".into(), line: 2 });
        assert_eq!(WORD.tokenize_fixed("d", &vocab, Unknown::MapToUnk, None), Err(TokenizeError::NoUnkToken));
        vocab.intern(UNK);
        assert_eq!(WORD.tokenize_fixed("a d", &vocab, Unknown::MapToUnk, None), Ok(vec![0, 4]));
        assert_eq!(WORD.tokenize_fixed("a b d", &vocab, Unknown::Reject, Some(2)), Ok(vec![0, 1]));
    }

    #[test]
    fn characters_round_trip() {
        let text = "吾輩は猫である。名前はまだ無い。\n👩‍👩‍👧 e\u{301} Ǆ\r\n\t\\";
        let mut vocab = Vocab::new();
        let ids = CHAR.tokenize_growing(text, &mut vocab, None);
        assert_eq!(ids.len(), text.chars().count());
        assert_eq!(CHAR.detokenize(ids, &vocab), text);
        let lower = Tokenizer { level: Level::Char, lowercase: true };
        let mut vocab = Vocab::new();
        let ids = lower.tokenize_growing("AbÇİ", &mut vocab, None);
        assert_eq!(lower.detokenize(ids, &vocab), "AbÇİ".to_lowercase());
    }

    #[test]
    fn both_levels_lower_case_as_str_to_lowercase() {
        // A final capital sigma becomes ς, which lower-casing one character at a time missed
        // (found by the char_tokenizer fuzzer: "\0eΣ\u{311}").
        let text = "ΟΔΟΣ ΣΑΣ Σ\n\0eΣ\u{311}\nΟΔΟΣ";
        let expected = "οδος σας σ\n\0eς\u{311}\nοδος";
        assert_eq!(text.to_lowercase(), expected);
        for level in [Level::Word, Level::Char] {
            let tokenizer = Tokenizer { level, lowercase: true };
            let mut vocab = Vocab::new();
            let ids = tokenizer.tokenize_growing(text, &mut vocab, None);
            let words: Vec<&str> = expected.split_whitespace().collect();
            match level {
                Level::Char => assert_eq!(tokenizer.detokenize(ids, &vocab), expected),
                Level::Word => assert!(words.iter().all(|word| vocab.id(word).is_some()), "{:?}", vocab.tokens()),
            }
        }
        // Char-level line numbers still count the line breaks.
        let mut vocab = Vocab::new();
        CHAR.tokenize_growing("ab\nc", &mut vocab, None);
        let error = CHAR.tokenize_fixed("a\nb\nd", &vocab, Unknown::Reject, None).unwrap_err();
        assert_eq!(error, TokenizeError::UnknownToken { token: "d".into(), line: 3 });
    }

    #[test]
    fn words_round_trip_through_text() {
        let text = " the cat \n sat  on\tthe mat \n\n";
        let mut vocab = Vocab::new();
        let ids = WORD.tokenize_growing(text, &mut vocab, None);
        let again = WORD.detokenize(ids.iter().copied(), &vocab);
        assert_eq!(WORD.tokenize_fixed(&again, &vocab, Unknown::Reject, None).unwrap(), ids);
    }

    #[test]
    fn levels_parse() {
        assert_eq!("word".parse::<Level>(), Ok(Level::Word));
        assert_eq!("char".parse::<Level>(), Ok(Level::Char));
        assert!("bytes".parse::<Level>().unwrap_err().contains("bytes"));
    }
}
