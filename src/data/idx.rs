//! The IDX file format (LeCun's MNIST container), raw or gzipped.
//!
//! Layout, all integers big-endian `u32`:
//! * images: magic `0x00000803` (2051), count, rows, cols, then `count·rows·cols` bytes;
//! * labels: magic `0x00000801` (2049), count, then `count` bytes.
//!
//! The parser never panics and never trusts the header for an allocation: a raw file is
//! checked against its real length, and a gzip stream is decompressed through a reader
//! bounded by what the header declares (plus one byte, to detect trailing data) and by
//! [`MAX_BODY_BYTES`], so a gzip bomb costs at most that much memory. Gzip is detected by
//! its magic bytes `1f 8b`; a file named `*.gz` that is not gzip is an error.
use std::io::Read;
use std::path::{Path, PathBuf};

/// Magic number of an IDX images file (unsigned bytes, 3 dimensions).
pub const MAGIC_IMAGES: u32 = 0x0000_0803;
/// Magic number of an IDX labels file (unsigned bytes, 1 dimension).
pub const MAGIC_LABELS: u32 = 0x0000_0801;
/// Largest body (pixels or labels) accepted: 256 MiB, five times MNIST's training images.
pub const MAX_BODY_BYTES: u64 = 256 << 20;

/// Which IDX file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    /// `*-images-idx3-ubyte`: 28×28 images.
    Images,
    /// `*-labels-idx1-ubyte`: labels 0..=9.
    Labels,
}

impl IdxKind {
    fn magic(self) -> u32 {
        match self {
            IdxKind::Images => MAGIC_IMAGES,
            IdxKind::Labels => MAGIC_LABELS,
        }
    }
    fn header_len(self) -> usize {
        match self {
            IdxKind::Images => 16,
            IdxKind::Labels => 8,
        }
    }
    fn noun(self) -> &'static str {
        match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        }
    }
}

/// What is wrong with an IDX file (the file itself is named by [`IdxError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdxProblem {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// Zero bytes (after decompression).
    #[error("empty file (0 bytes), expected an IDX {0} file")]
    Empty(&'static str),
    /// Fewer bytes than the fixed header.
    #[error("truncated header: {got} bytes, an IDX {what} header needs {need}")]
    TruncatedHeader {
        /// Bytes present.
        got: usize,
        /// Header size.
        need: usize,
        /// "images" or "labels".
        what: &'static str,
    },
    /// The first four bytes are not the expected magic number.
    #[error("{}", wrong_magic(*.found, *.expected))]
    WrongMagic {
        /// Magic found.
        found: u32,
        /// Magic expected.
        expected: u32,
    },
    /// Images that are not 28×28.
    #[error("images are {rows}×{cols}, expected 28×28")]
    WrongDims {
        /// Declared rows.
        rows: u32,
        /// Declared columns.
        cols: u32,
    },
    /// The header declares more data than the limit [`MAX_BODY_BYTES`].
    #[error("header declares {count} {what} ({bytes} bytes), more than the {limit}-byte limit")]
    TooLarge {
        /// Declared count.
        count: u32,
        /// Declared body size.
        bytes: u64,
        /// The limit.
        limit: u64,
        /// "images" or "labels".
        what: &'static str,
    },
    /// Fewer data bytes than the header declares.
    #[error(
        "truncated data: header declares {count} {what} ({need} bytes) but only {got} bytes follow"
    )]
    TruncatedData {
        /// Declared count.
        count: u32,
        /// Declared body size.
        need: u64,
        /// Body bytes present.
        got: u64,
        /// "images" or "labels".
        what: &'static str,
    },
    /// More bytes than the header declares.
    #[error("{extra} unexpected trailing byte(s) after the {count} declared {what}")]
    TrailingData {
        /// Extra bytes (for gzip input, at least this many).
        extra: u64,
        /// Declared count.
        count: u32,
        /// "images" or "labels".
        what: &'static str,
    },
    /// A label outside `0..=9`.
    #[error("label {label} at index {index} is above 9")]
    LabelOutOfRange {
        /// Position of the first bad label.
        index: usize,
        /// Its value.
        label: u8,
    },
    /// The gzip layer failed (bad header, corrupt deflate data, CRC mismatch, truncated).
    #[error("corrupt gzip data: {0}")]
    Gzip(String),
    /// The file is named `*.gz` but does not start with the gzip magic `1f 8b`.
    #[error("named .gz but is not gzip data (starts with {0})")]
    NotGzip(String),
    /// Image and label files of a split hold different counts (reported on the labels file).
    #[error("holds {labels} labels but '{}' holds {images} images", images_path.display())]
    CountMismatch {
        /// Labels in this file.
        labels: usize,
        /// Images in the images file.
        images: usize,
        /// The images file.
        images_path: PathBuf,
    },
}

fn wrong_magic(found: u32, expected: u32) -> String {
    let hint = match found {
        MAGIC_IMAGES => " — this is an IDX images file",
        MAGIC_LABELS => " — this is an IDX labels file",
        0x1f8b_0000..=0x1f8b_ffff => " — gzip data inside gzip?",
        _ => " — not an MNIST IDX file",
    };
    format!(
        "wrong magic number 0x{found:08x} ({found}), expected 0x{expected:08x} ({expected}){hint}"
    )
}

/// An [`IdxProblem`] together with the file it was found in.
#[derive(Debug, thiserror::Error)]
#[error("'{}': {problem}", path.display())]
pub struct IdxError {
    /// The offending file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: IdxProblem,
}

/// A malformed IDX file is bad input.
impl From<IdxError> for crate::Error {
    fn from(e: IdxError) -> Self {
        crate::Error::Input(Box::new(e))
    }
}

/// Reads and validates one IDX file (raw or gzip, see the module doc). Returns the body:
/// `count × 784` pixels for [`IdxKind::Images`], `count` labels for [`IdxKind::Labels`].
pub fn read_file(path: &Path, kind: IdxKind) -> Result<Vec<u8>, IdxError> {
    let err = |problem| IdxError {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(IdxProblem::Io(e.to_string())))?;
    let limit = MAX_BODY_BYTES + kind.header_len() as u64 + 1;
    if meta.len() > limit {
        return Err(err(IdxProblem::TooLarge {
            count: 0,
            bytes: meta.len(),
            limit: MAX_BODY_BYTES,
            what: "bytes of file",
        }));
    }
    let bytes = std::fs::read(path).map_err(|e| err(IdxProblem::Io(e.to_string())))?;
    let named_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if named_gz && !is_gzip(&bytes) {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let head = if head.is_empty() {
            "nothing: the file is empty".to_string()
        } else {
            head.join(" ")
        };
        return Err(err(IdxProblem::NotGzip(head)));
    }
    parse(&bytes, kind).map_err(err)
}

/// Whether `bytes` start with the gzip magic `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Parses IDX bytes (raw or gzip, detected by magic bytes) and returns the validated body.
/// This is the fuzzing entry point; it must never panic.
pub fn parse(bytes: &[u8], kind: IdxKind) -> Result<Vec<u8>, IdxProblem> {
    if is_gzip(bytes) {
        let decoded = gunzip_bounded(bytes, kind)?;
        parse_raw(&decoded, kind).map(<[u8]>::to_vec)
    } else {
        parse_raw(bytes, kind).map(<[u8]>::to_vec)
    }
}

/// Validates raw (decompressed) IDX bytes and returns the body as a sub-slice.
pub fn parse_raw(bytes: &[u8], kind: IdxKind) -> Result<&[u8], IdxProblem> {
    let what = kind.noun();
    let hl = kind.header_len();
    let (count, body_len) = parse_header(bytes, kind)?;
    let body = &bytes[hl..];
    let got = body.len() as u64;
    if got < body_len {
        return Err(IdxProblem::TruncatedData {
            count,
            need: body_len,
            got,
            what,
        });
    }
    if got > body_len {
        return Err(IdxProblem::TrailingData {
            extra: got - body_len,
            count,
            what,
        });
    }
    if kind == IdxKind::Labels
        && let Some(index) = body.iter().position(|&l| l > 9)
    {
        return Err(IdxProblem::LabelOutOfRange {
            index,
            label: body[index],
        });
    }
    Ok(body)
}

/// Checks the header at the start of `bytes` (which must hold at least the header) and
/// returns `(count, declared body length)`. Does not look past the header.
fn parse_header(bytes: &[u8], kind: IdxKind) -> Result<(u32, u64), IdxProblem> {
    let what = kind.noun();
    let hl = kind.header_len();
    if bytes.is_empty() {
        return Err(IdxProblem::Empty(what));
    }
    let be = |i: usize| -> Option<u32> {
        bytes
            .get(i..i + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let truncated = || IdxProblem::TruncatedHeader {
        got: bytes.len(),
        need: hl,
        what,
    };
    let magic = be(0).ok_or_else(truncated)?;
    if magic != kind.magic() {
        return Err(IdxProblem::WrongMagic {
            found: magic,
            expected: kind.magic(),
        });
    }
    if bytes.len() < hl {
        return Err(truncated());
    }
    let count = be(4).ok_or_else(truncated)?;
    let per_item: u64 = match kind {
        IdxKind::Images => {
            let rows = be(8).ok_or_else(truncated)?;
            let cols = be(12).ok_or_else(truncated)?;
            if rows != 28 || cols != 28 {
                return Err(IdxProblem::WrongDims { rows, cols });
            }
            784
        }
        IdxKind::Labels => 1,
    };
    let body_len = u64::from(count) * per_item; // ≤ 2^32 · 784: no overflow
    if body_len > MAX_BODY_BYTES {
        return Err(IdxProblem::TooLarge {
            count,
            bytes: body_len,
            limit: MAX_BODY_BYTES,
            what,
        });
    }
    Ok((count, body_len))
}

/// Decompresses a gzip stream, reading no more than the header declares plus one byte.
fn gunzip_bounded(gz: &[u8], kind: IdxKind) -> Result<Vec<u8>, IdxProblem> {
    let gzerr = |e: std::io::Error| IdxProblem::Gzip(e.to_string());
    let hl = kind.header_len();
    // bufread flavour over the slice itself: after the stream ends, `get_ref` is exactly
    // the input left over, so bytes after the gzip member can be reported.
    let mut dec = flate2::bufread::GzDecoder::new(gz);
    let mut out = Vec::with_capacity(hl);
    (&mut dec)
        .take(hl as u64)
        .read_to_end(&mut out)
        .map_err(gzerr)?;
    if out.len() < hl {
        // Too short for a header: finish the stream so that a corrupt stream is reported as
        // such, then let the header check name the problem.
        let mut rest = Vec::new();
        (&mut dec).take(1).read_to_end(&mut rest).map_err(gzerr)?;
        parse_header(&out, kind)?;
        return Err(IdxProblem::TruncatedHeader {
            got: out.len(),
            need: hl,
            what: kind.noun(),
        });
    }
    let (_, body_len) = parse_header(&out, kind)?;
    // +1: a stream longer than declared shows up as one extra byte; a stream of exactly
    // the declared length makes the decoder reach its trailer, which verifies the CRC.
    (&mut dec)
        .take(body_len + 1)
        .read_to_end(&mut out)
        .map_err(gzerr)?;
    if (out.len() - hl) as u64 == body_len && !dec.get_ref().is_empty() {
        return Err(IdxProblem::Gzip(format!(
            "{} byte(s) after the end of the gzip stream",
            dec.get_ref().len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: u32, body: &[u8]) -> Vec<u8> {
        let mut v = MAGIC_LABELS.to_be_bytes().to_vec();
        v.extend(n.to_be_bytes());
        v.extend(body);
        v
    }

    #[test]
    fn huge_declared_count_is_rejected_without_allocating() {
        let mut v = MAGIC_IMAGES.to_be_bytes().to_vec();
        for x in [u32::MAX, 28, 28] {
            v.extend(x.to_be_bytes());
        }
        assert!(matches!(
            parse(&v, IdxKind::Images),
            Err(IdxProblem::TooLarge { .. })
        ));
    }

    #[test]
    fn labels_round_trip_raw() {
        assert_eq!(
            parse(&labels(3, &[0, 9, 5]), IdxKind::Labels),
            Ok(vec![0, 9, 5])
        );
    }
}
