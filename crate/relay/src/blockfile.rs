//! Block files as people have them: one raw serialized block, the same as hex text, or Bitcoin
//! Core's `blk*.dat` framing (network magic, little-endian `u32` length, block; repeated,
//! possibly followed by zero padding). [`read_blocks`] tells them apart by content alone and
//! says precisely why bytes that are none of them are refused. It is the relay's block import
//! (DESIGN: "block source … file import", feeding new blocks for S14/S15) and the input of the
//! offline tools.

use std::borrow::Cow;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use shoal_core::chain::encode::MAX_BLOCK_SERIALIZED_SIZE;
use shoal_core::chain::{Block, DecodeError};

/// The largest input file read: Core's `blk*.dat` files stop at 128 MiB, and hex text doubles
/// that; anything bigger is refused before it is read.
pub const MAX_INPUT_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// The network magics `blk*.dat` files start records with, by network name.
pub const KNOWN_MAGICS: [(&str, [u8; 4]); 5] = [
    ("mainnet", [0xf9, 0xbe, 0xb4, 0xd9]),
    ("testnet", [0x0b, 0x11, 0x09, 0x07]),
    ("testnet4", [0x1c, 0x16, 0x3f, 0x28]),
    ("signet", [0x0a, 0x03, 0xcf, 0x40]),
    ("regtest", [0xfa, 0xbf, 0xb5, 0xda]),
];

/// The network a magic belongs to, if known.
pub fn network_of_magic(magic: [u8; 4]) -> Option<&'static str> {
    KNOWN_MAGICS
        .iter()
        .find(|(_, m)| *m == magic)
        .map(|(name, _)| *name)
}

/// How a file holds its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes themselves.
    Binary,
    /// Hexadecimal text (whitespace anywhere is ignored).
    Hex,
}

impl Encoding {
    /// `binary` or `hex`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Hex => "hex",
        }
    }
}

/// How the blocks are laid out in the (decoded) bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly one serialized block.
    Single,
    /// `blk*.dat` records with this magic.
    BlkFile {
        /// The network magic of every record.
        magic: [u8; 4],
    },
}

/// A block read from a file, and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBlock {
    /// The block.
    pub block: Block,
    /// The offset of the block's first byte in the decoded bytes.
    pub offset: usize,
}

/// The blocks of a file and how they were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFile {
    /// Binary or hex.
    pub encoding: Encoding,
    /// One block or `blk*.dat` records.
    pub framing: Framing,
    /// The blocks in file order (at least one).
    pub blocks: Vec<FileBlock>,
}

impl BlockFile {
    /// A short description such as `blk (regtest magic), hex`.
    pub fn format_name(&self) -> String {
        let framing = match self.framing {
            Framing::Single => "raw block".to_owned(),
            Framing::BlkFile { magic } => {
                format!(
                    "blk ({} magic)",
                    network_of_magic(magic).unwrap_or("unknown")
                )
            }
        };
        format!("{framing}, {}", self.encoding.name())
    }

    /// The network whose magic frames the records, if the file is `blk*.dat`-framed.
    pub fn network(&self) -> Option<&'static str> {
        match self.framing {
            Framing::Single => None,
            Framing::BlkFile { magic } => network_of_magic(magic),
        }
    }
}

/// Why a file is not a readable block file. Every message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read. (Messages leave the path out: callers name the file.)
    #[error("cannot read the file: {0}")]
    Io(io::Error),
    /// The file is larger than [`MAX_INPUT_FILE_BYTES`].
    #[error("the file is {0} bytes, more than the {MAX_INPUT_FILE_BYTES}-byte input limit")]
    TooLarge(u64),
    /// No bytes (or only whitespace).
    #[error("the file is empty")]
    Empty,
    /// Text that is not hexadecimal.
    #[error("invalid hex: {found:?} at byte {offset} is not a hexadecimal digit")]
    BadHexCharacter {
        /// The offending character.
        found: char,
        /// Its position in the file.
        offset: usize,
    },
    /// An odd number of hex digits.
    #[error("invalid hex: {digits} hexadecimal digits is an odd number")]
    OddHexDigits {
        /// The digit count.
        digits: usize,
    },
    /// Neither `blk*.dat` framing nor a valid block.
    #[error("not a block (nor hex text, nor blk*.dat records with a known network magic): {0}")]
    NotABlock(DecodeError),
    /// A `blk*.dat` record header cut short.
    #[error(
        "blk record {index} at byte {offset}: only {remaining} bytes left, a record header is 8"
    )]
    TruncatedRecordHeader {
        /// The record's index.
        index: usize,
        /// Its offset.
        offset: usize,
        /// The bytes left.
        remaining: usize,
    },
    /// A record whose magic is unknown or differs from the first record's.
    #[error("blk record {index} at byte {offset}: magic {found} differs from the file's {expected} ({network})")]
    WrongMagic {
        /// The record's index.
        index: usize,
        /// Its offset.
        offset: usize,
        /// The magic found, hex.
        found: String,
        /// The magic of the first record, hex.
        expected: String,
        /// The first record's network.
        network: &'static str,
    },
    /// A record longer than any block or than the bytes left.
    #[error("blk record {index} at byte {offset}: length {length} but {available} bytes follow (a block is at most {MAX_BLOCK_SERIALIZED_SIZE})")]
    BadRecordLength {
        /// The record's index.
        index: usize,
        /// Its offset.
        offset: usize,
        /// The announced length.
        length: u32,
        /// The bytes after the record header.
        available: usize,
    },
    /// A record whose block does not decode.
    #[error("blk record {index} at byte {offset}: {reason}")]
    BadBlock {
        /// The record's index.
        index: usize,
        /// Its offset.
        offset: usize,
        /// The decode error.
        reason: DecodeError,
    },
}

/// Reads a file of at most [`MAX_INPUT_FILE_BYTES`].
pub fn read_limited(path: &Path) -> Result<Vec<u8>, FileError> {
    let file = fs::File::open(path).map_err(FileError::Io)?;
    let size = file.metadata().map_err(FileError::Io)?.len();
    if size > MAX_INPUT_FILE_BYTES {
        return Err(FileError::TooLarge(size));
    }
    let mut data = Vec::with_capacity(size as usize);
    // `take` also bounds a file that grows while it is read.
    file.take(MAX_INPUT_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(FileError::Io)?;
    if data.len() as u64 > MAX_INPUT_FILE_BYTES {
        return Err(FileError::TooLarge(data.len() as u64));
    }
    Ok(data)
}

/// Reads and decodes the blocks in the file at `path`.
pub fn read_blocks(path: &Path) -> Result<BlockFile, FileError> {
    decode_blocks(&read_limited(path)?)
}

/// Decodes the file contents `data`, telling hex from binary and `blk*.dat` framing from a
/// single block.
pub fn decode_blocks(data: &[u8]) -> Result<BlockFile, FileError> {
    let (encoding, bytes) = decode_text(data)?;
    let blk = KNOWN_MAGICS
        .iter()
        .find(|(_, m)| bytes.starts_with(m))
        .map(|&(network, magic)| decode_blk(&bytes, magic, network));
    let (framing, blocks) = match blk {
        Some(Ok(blocks)) => (
            Framing::BlkFile {
                magic: bytes_4(&bytes),
            },
            blocks,
        ),
        // A raw block whose version happens to spell a magic: accept it, else report the
        // blk error, which says more.
        Some(Err(blk_error)) => match Block::decode(&bytes) {
            Ok(block) => (Framing::Single, vec![FileBlock { block, offset: 0 }]),
            Err(_) => return Err(blk_error),
        },
        None => {
            let block = Block::decode(&bytes).map_err(FileError::NotABlock)?;
            (Framing::Single, vec![FileBlock { block, offset: 0 }])
        }
    };
    Ok(BlockFile {
        encoding,
        framing,
        blocks,
    })
}

/// Decodes hex text (whitespace ignored) or passes binary through. Text is any file made only
/// of printable ASCII and whitespace: a serialized block always holds other bytes (its
/// header's zero bytes, its counts), so a text file can only be meant as hex.
pub fn decode_text(data: &[u8]) -> Result<(Encoding, Cow<'_, [u8]>), FileError> {
    if data.is_empty() {
        return Err(FileError::Empty);
    }
    let is_text = data
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if !is_text {
        return Ok((Encoding::Binary, Cow::Borrowed(data)));
    }
    let mut digits = Vec::with_capacity(data.len());
    for (offset, &b) in data.iter().enumerate() {
        if b.is_ascii_whitespace() {
            continue;
        }
        let digit = (b as char).to_digit(16).ok_or(FileError::BadHexCharacter {
            found: b as char,
            offset,
        })?;
        digits.push(digit as u8);
    }
    if digits.is_empty() {
        return Err(FileError::Empty);
    }
    if digits.len() % 2 == 1 {
        return Err(FileError::OddHexDigits {
            digits: digits.len(),
        });
    }
    let bytes = digits.chunks_exact(2).map(|p| (p[0] << 4) | p[1]).collect();
    Ok((Encoding::Hex, Cow::Owned(bytes)))
}

fn bytes_4(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[..4]);
    out
}

/// Decodes `blk*.dat` records all framed with `magic`; trailing zero bytes are padding.
fn decode_blk(
    bytes: &[u8],
    magic: [u8; 4],
    network: &'static str,
) -> Result<Vec<FileBlock>, FileError> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let index = blocks.len();
        if rest.len() < 8 {
            return Err(FileError::TruncatedRecordHeader {
                index,
                offset,
                remaining: rest.len(),
            });
        }
        let found = bytes_4(rest);
        if found != magic {
            return Err(FileError::WrongMagic {
                index,
                offset,
                found: hex::encode(found),
                expected: hex::encode(magic),
                network,
            });
        }
        let length = u32::from_le_bytes(bytes_4(&rest[4..]));
        let available = rest.len() - 8;
        if length as usize > available || length as usize > MAX_BLOCK_SERIALIZED_SIZE {
            return Err(FileError::BadRecordLength {
                index,
                offset,
                length,
                available,
            });
        }
        let start = offset + 8;
        let end = start + length as usize;
        let block = Block::decode(&bytes[start..end]).map_err(|reason| FileError::BadBlock {
            index,
            offset,
            reason,
        })?;
        blocks.push(FileBlock {
            block,
            offset: start,
        });
        offset = end;
    }
    debug_assert!(!blocks.is_empty(), "the file starts with a record");
    Ok(blocks)
}

/// Writes one `blk*.dat` record: magic, length, block.
pub fn write_blk_record(out: &mut impl Write, magic: [u8; 4], block: &[u8]) -> io::Result<()> {
    let length = u32::try_from(block.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "block longer than 4 GiB"))?;
    out.write_all(&magic)?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_core::chain::generate::regtest_genesis_block;

    const REGTEST: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

    fn blk(blocks: &[Block], magic: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in blocks {
            write_blk_record(&mut out, magic, &b.encode()).unwrap();
        }
        out
    }

    #[test]
    fn magics_agree_with_the_core_params() {
        for network in shoal_core::chain::Network::ALL {
            let params = network.params();
            assert_eq!(network_of_magic(params.magic), Some(network.name()));
        }
    }

    #[test]
    fn raw_hex_and_blk_are_told_apart() {
        let genesis = regtest_genesis_block();
        let raw = genesis.encode();
        let read = decode_blocks(&raw).unwrap();
        assert_eq!(read.framing, Framing::Single);
        assert_eq!(read.encoding, Encoding::Binary);
        assert_eq!(read.blocks[0].block, genesis);

        let mut text = String::new();
        for chunk in hex::encode(&raw).as_bytes().chunks(64) {
            text.push_str(std::str::from_utf8(chunk).unwrap());
            text.push_str("\r\n\t ");
        }
        let read = decode_blocks(text.as_bytes()).unwrap();
        assert_eq!(read.encoding, Encoding::Hex);
        assert_eq!(read.blocks[0].block, genesis);

        let mut framed = blk(&[genesis.clone(), genesis.clone()], REGTEST);
        framed.extend_from_slice(&[0; 4096]);
        let read = decode_blocks(&framed).unwrap();
        assert_eq!(read.framing, Framing::BlkFile { magic: REGTEST });
        assert_eq!(read.network(), Some("regtest"));
        assert_eq!(read.blocks.len(), 2);
        assert_eq!(read.blocks[1].offset, 8 + raw.len() + 8);
    }

    #[test]
    fn every_malformed_input_has_a_reason() {
        let genesis = regtest_genesis_block().encode();
        let framed = blk(&[regtest_genesis_block()], REGTEST);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty"),
            (b" \n\t".to_vec(), "empty"),
            (b"00ff0g".to_vec(), "'g' at byte 5"),
            (b"abc".to_vec(), "odd"),
            (genesis[..100].to_vec(), "not a block"),
            (vec![0xde; 300], "not a block"),
            (
                framed[..framed.len() - 1].to_vec(),
                "length 285 but 284 bytes follow",
            ),
            (
                [&framed[..], &[0xfa, 0xbf][..]].concat(),
                "only 2 bytes left",
            ),
            (
                [&framed[..], &[0xf9, 0xbe, 0xb4, 0xd9, 1, 0, 0, 0, 0][..]].concat(),
                "magic f9beb4d9 differs from the file's fabfb5da",
            ),
            (
                [&REGTEST[..], &[0xff, 0xff, 0xff, 0xff]].concat(),
                "length 4294967295",
            ),
            (
                [&REGTEST[..], &[1, 0, 0, 0, 0]].concat(),
                "blk record 0 at byte 0",
            ),
        ];
        for (input, reason) in cases {
            let error = decode_blocks(&input).unwrap_err().to_string();
            assert!(error.contains(reason), "{error:?} lacks {reason:?}");
            assert!(!error.contains('\n'));
        }
    }

    proptest::proptest! {
        /// Hostile bytes: any input is decoded or refused with a one-line reason, never a
        /// panic.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Err(e) = decode_blocks(&data) {
                proptest::prop_assert!(!e.to_string().contains('\n'));
            }
        }

        /// Arbitrary records behind a valid magic, and every cut of a valid blk file.
        #[test]
        fn framed_garbage_and_cuts_never_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            cut in 0usize..600,
        ) {
            let framed = [&REGTEST[..], &body].concat();
            let _ = decode_blocks(&framed);
            let valid = blk(&[regtest_genesis_block(), regtest_genesis_block()], REGTEST);
            let cut = cut.min(valid.len());
            let result = decode_blocks(&valid[..cut]);
            if cut == valid.len() {
                proptest::prop_assert!(result.is_ok());
            }
        }
    }
}
