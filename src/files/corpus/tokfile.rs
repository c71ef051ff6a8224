//! The token file (`.tok`): a fixed 64-byte header, then the ids, viewed in place.
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0  | 8 | magic `RNNLMTOK` |
//! | 8  | 4 | format version, 1 |
//! | 12 | 4 | bytes per id: 2 when the vocabulary fits in `u16`, else 4 |
//! | 16 | 8 | vocabulary size |
//! | 24 | 8 | token count |
//! | 32 | 4 | level: 1 word, 2 char |
//! | 36 | 4 | CRC-32 of the vocabulary file the ids refer to |
//! | 40 | 4 | CRC-32 of the text file the ids were made from (0: unknown) |
//! | 44 | 4 | CRC-32 of the payload |
//! | 48 | 4 | CRC-32 of bytes 0..48 of the header |
//! | 52 | 12 | zero |
//! | 64 | count x width | the ids, little-endian |
//!
//! All integers are little-endian. The payload starts 64 bytes into the file, and a memory map
//! starts on a page boundary, so the ids can be viewed as `&[u16]` / `&[u32]` in place.
//! Opening validates everything before handing out a slice; writing goes through a temporary
//! file in the same directory, renamed into place only when complete.

use super::tokenize::Level;
use memmap2::Mmap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The first eight bytes of every token file.
pub const MAGIC: &[u8; 8] = b"RNNLMTOK";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Header size in bytes; the payload starts here.
pub const HEADER_LEN: usize = 64;

/// What a token file says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes per id, 2 or 4.
    pub id_bytes: u32,
    /// The vocabulary size every id is below.
    pub vocab_size: u64,
    /// Tokens in the file.
    pub token_count: u64,
    /// Word or character level.
    pub level: Level,
    /// CRC-32 of the vocabulary file.
    pub vocab_crc: u32,
    /// CRC-32 of the source text (0 when unknown).
    pub source_crc: u32,
    /// CRC-32 of the payload.
    pub payload_crc: u32,
}

/// Why a token file was rejected. Each kind of damage has its own variant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokFileError {
    /// The file has no bytes at all.
    Empty,
    /// The file ends inside the 64-byte header.
    TruncatedHeader {
        /// The file length in bytes.
        len: usize,
    },
    /// The file does not start with `RNNLMTOK`.
    BadMagic,
    /// A format version this build does not read.
    UnsupportedVersion {
        /// The version in the file.
        version: u32,
    },
    /// The header's own checksum does not match: its fields cannot be trusted.
    HeaderChecksum,
    /// A header field has an impossible value.
    BadHeaderField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The header promises no tokens.
    NoTokens,
    /// The file is shorter than the header says.
    Truncated {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes the file has.
        actual: u64,
    },
    /// The file is longer than the header says.
    TrailingBytes {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes the file has.
        actual: u64,
    },
    /// The payload does not match its checksum.
    PayloadChecksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the payload as read.
        computed: u32,
    },
    /// An id is not below the vocabulary size.
    IdOutOfRange {
        /// Its position among the ids (from 0).
        position: u64,
        /// The id.
        id: u32,
        /// The vocabulary size it must be below.
        vocab_size: u64,
    },
    /// The ids are not aligned in memory (not possible for a memory map; reported, not assumed).
    Misaligned,
}

impl fmt::Display for TokFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokFileError::Empty => write!(f, "the file is empty"),
            TokFileError::TruncatedHeader { len } => {
                write!(f, "truncated header: the file has {len} bytes, a token file has at least {HEADER_LEN}")
            }
            TokFileError::BadMagic => write!(f, "not an rnnlm token file (it does not start with RNNLMTOK)"),
            TokFileError::UnsupportedVersion { version } => {
                write!(f, "token file format version {version} is not supported (this build reads version {VERSION})")
            }
            TokFileError::HeaderChecksum => write!(f, "the header is corrupted (its checksum does not match)"),
            TokFileError::BadHeaderField { field, value } => write!(f, "the header's {field} {value} is invalid"),
            TokFileError::NoTokens => write!(f, "the file holds no tokens"),
            TokFileError::Truncated { expected, actual } => {
                write!(f, "truncated: the header promises {expected} bytes, the file has {actual}")
            }
            TokFileError::TrailingBytes { expected, actual } => {
                write!(f, "length mismatch: the header promises {expected} bytes, the file has {actual}")
            }
            TokFileError::PayloadChecksum { stored, computed } => {
                write!(f, "the ids are corrupted: checksum {computed:08x}, the header says {stored:08x}")
            }
            TokFileError::IdOutOfRange { position, id, vocab_size } => {
                write!(f, "token {position} has id {id}, outside the vocabulary of {vocab_size}")
            }
            TokFileError::Misaligned => write!(f, "the ids are not aligned in memory"),
        }
    }
}

impl std::error::Error for TokFileError {}

/// A borrowed view of the ids, in the width they are stored in.
#[derive(Clone, Copy, Debug)]
pub enum Ids<'a> {
    /// Ids stored as 16 bits (vocabularies up to 65,536).
    U16(&'a [u16]),
    /// Ids stored as 32 bits.
    U32(&'a [u32]),
}

impl Ids<'_> {
    /// Number of ids.
    pub fn len(&self) -> usize {
        match self {
            Ids::U16(ids) => ids.len(),
            Ids::U32(ids) => ids.len(),
        }
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at `index`.
    pub fn get(&self, index: usize) -> u32 {
        match self {
            Ids::U16(ids) => ids[index] as u32,
            Ids::U32(ids) => ids[index],
        }
    }

    /// All ids widened to `u32` (a copy).
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Ids::U16(ids) => ids.iter().map(|&id| id as u32).collect(),
            Ids::U32(ids) => ids.to_vec(),
        }
    }

    /// The ids `range`, still borrowed.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        match self {
            Ids::U16(ids) => Ids::U16(&ids[range]),
            Ids::U32(ids) => Ids::U32(&ids[range]),
        }
    }

    /// The largest id, if any.
    pub fn max(&self) -> Option<u32> {
        match self {
            Ids::U16(ids) => ids.iter().max().map(|&id| id as u32),
            Ids::U32(ids) => ids.iter().max().copied(),
        }
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

fn level_code(level: Level) -> u32 {
    match level {
        Level::Word => 1,
        Level::Char => 2,
    }
}

impl Header {
    /// The 64 header bytes, checksum included.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.id_bytes.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.vocab_size.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.token_count.to_le_bytes());
        bytes[32..36].copy_from_slice(&level_code(self.level).to_le_bytes());
        bytes[36..40].copy_from_slice(&self.vocab_crc.to_le_bytes());
        bytes[40..44].copy_from_slice(&self.source_crc.to_le_bytes());
        bytes[44..48].copy_from_slice(&self.payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&bytes[..48]);
        bytes[48..52].copy_from_slice(&header_crc.to_le_bytes());
        bytes
    }

    /// Parses and checks the header at the start of `file` (the whole file's bytes), including
    /// that the file length matches it. Does not look at the payload.
    pub fn parse(file: &[u8]) -> Result<Header, TokFileError> {
        if file.is_empty() {
            return Err(TokFileError::Empty);
        }
        if file.len() < HEADER_LEN {
            return Err(if file.starts_with(&MAGIC[..file.len().min(8)]) {
                TokFileError::TruncatedHeader { len: file.len() }
            } else {
                TokFileError::BadMagic
            });
        }
        if &file[0..8] != MAGIC {
            return Err(TokFileError::BadMagic);
        }
        let version = u32_at(file, 8);
        if version != VERSION {
            return Err(TokFileError::UnsupportedVersion { version });
        }
        if u32_at(file, 48) != crc32fast::hash(&file[..48]) {
            return Err(TokFileError::HeaderChecksum);
        }
        let bad = |field, value| Err(TokFileError::BadHeaderField { field, value });
        if file[52..HEADER_LEN].iter().any(|&b| b != 0) {
            return bad("reserved bytes", 1);
        }
        let id_bytes = u32_at(file, 12);
        let vocab_size = u64_at(file, 16);
        let token_count = u64_at(file, 24);
        let level = match u32_at(file, 32) {
            1 => Level::Word,
            2 => Level::Char,
            other => return bad("level", other as u64),
        };
        match id_bytes {
            2 if vocab_size > 1 << 16 => return bad("vocabulary size (too large for 2-byte ids)", vocab_size),
            2 | 4 => {}
            other => return bad("id width", other as u64),
        }
        if vocab_size == 0 || vocab_size > 1 << 32 {
            return bad("vocabulary size", vocab_size);
        }
        if token_count == 0 {
            return Err(TokFileError::NoTokens);
        }
        let expected = token_count
            .checked_mul(id_bytes as u64)
            .and_then(|payload| payload.checked_add(HEADER_LEN as u64))
            .ok_or(TokFileError::BadHeaderField { field: "token count", value: token_count })?;
        let actual = file.len() as u64;
        if actual < expected {
            return Err(TokFileError::Truncated { expected, actual });
        }
        if actual > expected {
            return Err(TokFileError::TrailingBytes { expected, actual });
        }
        Ok(Header {
            id_bytes,
            vocab_size,
            token_count,
            level,
            vocab_crc: u32_at(file, 36),
            source_crc: u32_at(file, 40),
            payload_crc: u32_at(file, 44),
        })
    }
}

/// Validates a whole token file held in memory (header, length, checksum, id range) and views
/// its ids in place. `file` must start at an address aligned for the ids (4 bytes); a memory map
/// always is.
pub fn parse(file: &[u8]) -> Result<(Header, Ids<'_>), TokFileError> {
    let header = Header::parse(file)?;
    let payload = &file[HEADER_LEN..];
    let computed = crc32fast::hash(payload);
    if computed != header.payload_crc {
        return Err(TokFileError::PayloadChecksum { stored: header.payload_crc, computed });
    }
    let ids = match header.id_bytes {
        2 => Ids::U16(bytemuck::try_cast_slice(payload).map_err(|_| TokFileError::Misaligned)?),
        _ => Ids::U32(bytemuck::try_cast_slice(payload).map_err(|_| TokFileError::Misaligned)?),
    };
    let out_of_range = match ids {
        Ids::U16(ids) => ids.iter().position(|&id| id as u64 >= header.vocab_size),
        Ids::U32(ids) => ids.iter().position(|&id| id as u64 >= header.vocab_size),
    };
    if let Some(position) = out_of_range {
        return Err(TokFileError::IdOutOfRange {
            position: position as u64,
            id: ids.get(position),
            vocab_size: header.vocab_size,
        });
    }
    Ok((header, ids))
}

/// [`parse`] on bytes at any address: copies them to an aligned buffer first and returns the
/// ids as `u32`. For tests and tools; training uses [`TokenFile`], which copies nothing.
pub fn parse_owned(file: &[u8]) -> Result<(Header, Vec<u32>), TokFileError> {
    let mut aligned = vec![0u32; file.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut aligned)[..file.len()].copy_from_slice(file);
    let (header, ids) = parse(&bytemuck::cast_slice::<u32, u8>(&aligned)[..file.len()])?;
    Ok((header, ids.to_vec()))
}

/// An error that names the file it is about.
#[derive(Debug)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: FileErrorKind,
}

/// What went wrong with a file.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileErrorKind {
    /// Reading the file failed.
    Io(std::io::Error),
    /// The file is not a valid token file.
    Format(TokFileError),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FileErrorKind::Io(e) => write!(f, "{}: {e}", self.path.display()),
            FileErrorKind::Format(e) => write!(f, "{}: {e}", self.path.display()),
        }
    }
}

impl std::error::Error for FileError {}

/// An open, validated token file; its ids are read straight from the memory map.
pub struct TokenFile {
    path: PathBuf,
    header: Header,
    map: Mmap,
}

impl TokenFile {
    /// Maps `path` and validates it completely (header, length, payload checksum, ids).
    pub fn open(path: &Path) -> Result<TokenFile, FileError> {
        let error = |kind| FileError { path: path.to_owned(), kind };
        let file = File::open(path).map_err(|e| error(FileErrorKind::Io(e)))?;
        let len = file.metadata().map_err(|e| error(FileErrorKind::Io(e)))?.len();
        if len == 0 {
            // Mapping zero bytes fails on some systems; an empty file is simply malformed.
            return Err(error(FileErrorKind::Format(TokFileError::Empty)));
        }
        // SAFETY: the map is read-only and private to this process. If another process
        // truncated or rewrote the file while it is mapped, reads could fault or see changed
        // bytes; rnnlm itself never modifies a token file in place (it writes a new file and
        // renames it), which is the documented contract for token files.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| error(FileErrorKind::Io(e)))?;
        let header = parse(&map).map_err(|e| error(FileErrorKind::Format(e)))?.0;
        Ok(TokenFile { path: path.to_owned(), header, map })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids, viewed in the memory map without copying.
    pub fn ids(&self) -> Ids<'_> {
        let payload = &self.map[HEADER_LEN..];
        // `open` validated length, alignment and width; these casts cannot fail.
        match self.header.id_bytes {
            2 => Ids::U16(bytemuck::cast_slice(payload)),
            _ => Ids::U32(bytemuck::cast_slice(payload)),
        }
    }

    /// The address range of the mapping (for checking that views point into it).
    pub fn mapped_range(&self) -> std::ops::Range<usize> {
        let start = self.map.as_ptr() as usize;
        start..start + self.map.len()
    }
}

/// The complete bytes of a token file for `ids`: header and payload.
pub fn encode(ids: &[u32], vocab_size: u64, level: Level, vocab_crc: u32, source_crc: u32) -> Vec<u8> {
    let id_bytes: u32 = if vocab_size <= 1 << 16 { 2 } else { 4 };
    let mut payload = Vec::with_capacity(ids.len() * id_bytes as usize);
    for &id in ids {
        if id_bytes == 2 {
            payload.extend_from_slice(&(id as u16).to_le_bytes());
        } else {
            payload.extend_from_slice(&id.to_le_bytes());
        }
    }
    let header = Header {
        id_bytes,
        vocab_size,
        token_count: ids.len() as u64,
        level,
        vocab_crc,
        source_crc,
        payload_crc: crc32fast::hash(&payload),
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    bytes
}

/// Encodes `ids` and writes them to `path` atomically; an id not below `vocab_size` is an error
/// and nothing is written.
pub fn write(
    path: &Path,
    ids: &[u32],
    vocab_size: u64,
    level: Level,
    vocab_crc: u32,
    source_crc: u32,
) -> Result<(), FileError> {
    if let Some(position) = ids.iter().position(|&id| id as u64 >= vocab_size) {
        let kind = TokFileError::IdOutOfRange { position: position as u64, id: ids[position], vocab_size };
        return Err(FileError { path: path.to_owned(), kind: FileErrorKind::Format(kind) });
    }
    crate::files::atomic_file::write(path, &encode(ids, vocab_size, level, vocab_crc, source_crc))
        .map_err(|e| FileError { path: path.to_owned(), kind: FileErrorKind::Io(e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8]) -> Result<Vec<u32>, TokFileError> {
        parse_owned(bytes).map(|(_, ids)| ids)
    }

    fn valid(vocab: u64) -> Vec<u8> {
        encode(&[0, 3, 2, 3, 1], vocab, Level::Word, 7, 9)
    }

    #[test]
    fn round_trip_in_both_widths() {
        assert_eq!(check(&valid(4)).unwrap(), vec![0, 3, 2, 3, 1]);
        let wide = encode(&[70_000, 3], 70_001, Level::Char, 0, 0);
        assert_eq!(wide.len(), HEADER_LEN + 8);
        assert_eq!(check(&wide).unwrap(), vec![70_000, 3]);
        assert_eq!(valid(65_536).len(), HEADER_LEN + 10, "65536 ids still fit in u16");
    }

    #[test]
    fn each_kind_of_damage_has_its_own_error() {
        let good = valid(4);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            f(&mut bytes);
            check(&bytes).unwrap_err()
        };
        let reheader = |bytes: &mut Vec<u8>| {
            let crc = crc32fast::hash(&bytes[..48]);
            bytes[48..52].copy_from_slice(&crc.to_le_bytes());
        };
        assert_eq!(check(&[]).unwrap_err(), TokFileError::Empty);
        assert_eq!(check(&good[..20]).unwrap_err(), TokFileError::TruncatedHeader { len: 20 });
        assert_eq!(with(&|b| b[0] = b'X'), TokFileError::BadMagic);
        assert_eq!(check(b"hello").unwrap_err(), TokFileError::BadMagic);
        assert_eq!(
            with(&|b| {
                b[8] = 2;
                reheader(b)
            }),
            TokFileError::UnsupportedVersion { version: 2 }
        );
        assert_eq!(with(&|b| b[20] ^= 1), TokFileError::HeaderChecksum);
        assert_eq!(
            with(&|b| {
                b[12] = 3;
                reheader(b)
            }),
            TokFileError::BadHeaderField { field: "id width", value: 3 }
        );
        assert_eq!(
            with(&|b| {
                b[24..32].fill(0);
                reheader(b);
                b.truncate(HEADER_LEN)
            }),
            TokFileError::NoTokens
        );
        assert_eq!(with(&|b| b.truncate(b.len() - 1)), TokFileError::Truncated { expected: 74, actual: 73 });
        assert_eq!(with(&|b| b.push(0)), TokFileError::TrailingBytes { expected: 74, actual: 75 });
        assert_eq!(
            with(&|b| b[HEADER_LEN] ^= 1),
            TokFileError::PayloadChecksum {
                stored: crc32fast::hash(&good[HEADER_LEN..]),
                computed: crc32fast::hash(&[1, 0, 3, 0, 2, 0, 3, 0, 1, 0]),
            }
        );
        let out_of_range = encode(&[0, 3, 2, 3, 1], 3, Level::Word, 0, 0);
        assert_eq!(check(&out_of_range).unwrap_err(), TokFileError::IdOutOfRange { position: 1, id: 3, vocab_size: 3 });
    }

    #[test]
    fn misaligned_memory_is_an_error_not_undefined_behaviour() {
        let file = valid(4);
        let mut words = vec![0u32; file.len().div_ceil(4) + 1];
        let bytes = bytemuck::cast_slice_mut::<u32, u8>(&mut words);
        bytes[1..1 + file.len()].copy_from_slice(&file);
        assert_eq!(parse(&bytes[1..1 + file.len()]).unwrap_err(), TokFileError::Misaligned);
    }
}
