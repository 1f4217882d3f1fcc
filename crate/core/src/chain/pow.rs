//! Proof of work: 256-bit targets, the compact `nBits` form, and chain work.

use core::cmp::Ordering;
use core::fmt;

use super::hash::BlockHash;
use super::header::Header;

/// An unsigned 256-bit integer, as Bitcoin's `arith_uint256`; little-endian 64-bit limbs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256(pub [u64; 4]);

impl U256 {
    /// Zero.
    pub const ZERO: Self = Self([0; 4]);
    /// One.
    pub const ONE: Self = Self([1, 0, 0, 0]);
    /// The largest value.
    pub const MAX: Self = Self([u64::MAX; 4]);

    /// From 32 little-endian bytes (a hash in internal order read as a number).
    pub fn from_le_bytes(bytes: [u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            *limb = u64::from_le_bytes(b);
        }
        Self(limbs)
    }

    /// To 32 little-endian bytes.
    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// From a `u64`.
    pub const fn from_u64(n: u64) -> Self {
        Self([n, 0, 0, 0])
    }

    /// The number of significant bits.
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// Whether it is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (i, limb) in out.iter_mut().enumerate() {
            let (s1, c1) = self.0[i].overflowing_add(rhs.0[i]);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *limb = s2;
            carry = c1 || c2;
        }
        (!carry).then_some(Self(out))
    }

    /// `self + rhs`, saturating at [`U256::MAX`].
    pub fn saturating_add(self, rhs: Self) -> Self {
        self.checked_add(rhs).unwrap_or(Self::MAX)
    }

    /// `self - rhs`, wrapping.
    pub fn wrapping_sub(self, rhs: Self) -> Self {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (i, limb) in out.iter_mut().enumerate() {
            let (d1, b1) = self.0[i].overflowing_sub(rhs.0[i]);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *limb = d2;
            borrow = b1 || b2;
        }
        Self(out)
    }

    /// `self × rhs`, or `None` on overflow.
    pub fn checked_mul_u64(self, rhs: u64) -> Option<Self> {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for (i, limb) in out.iter_mut().enumerate() {
            let product = u128::from(self.0[i]) * u128::from(rhs) + carry;
            *limb = product as u64;
            carry = product >> 64;
        }
        (carry == 0).then_some(Self(out))
    }

    /// `self / rhs` for a non-zero `rhs`.
    pub fn div_u64(self, rhs: u64) -> Self {
        assert!(rhs != 0, "division by zero");
        let mut out = [0u64; 4];
        let mut rem = 0u128;
        for i in (0..4).rev() {
            let cur = (rem << 64) | u128::from(self.0[i]);
            out[i] = (cur / u128::from(rhs)) as u64;
            rem = cur % u128::from(rhs);
        }
        Self(out)
    }

    fn shl1(self) -> Self {
        let mut out = [0u64; 4];
        for (i, limb) in out.iter_mut().enumerate() {
            *limb = self.0[i] << 1;
            if i > 0 {
                *limb |= self.0[i - 1] >> 63;
            }
        }
        Self(out)
    }

    fn bit(&self, n: u32) -> bool {
        (self.0[(n / 64) as usize] >> (n % 64)) & 1 == 1
    }

    /// `self / rhs` for a non-zero `rhs` (schoolbook binary long division).
    pub fn div_u256(self, rhs: Self) -> Self {
        assert!(!rhs.is_zero(), "division by zero");
        let mut quotient = Self::ZERO;
        let mut rem = Self::ZERO;
        for n in (0..self.bits()).rev() {
            rem = rem.shl1();
            if self.bit(n) {
                rem.0[0] |= 1;
            }
            if rem >= rhs {
                rem = rem.wrapping_sub(rhs);
                quotient.0[(n / 64) as usize] |= 1 << (n % 64);
            }
        }
        quotient
    }

    /// The low 64 bits.
    pub fn low_u64(&self) -> u64 {
        self.0[0]
    }
}

impl core::ops::Not for U256 {
    type Output = Self;
    fn not(self) -> Self {
        Self(self.0.map(|l| !l))
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0x{:016x}{:016x}{:016x}{:016x}",
            self.0[3], self.0[2], self.0[1], self.0[0]
        )
    }
}

impl fmt::Display for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a compact target or a proof of work is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PowError {
    /// The compact form has its sign bit set.
    #[error("compact target {0:#010x} is negative")]
    Negative(u32),
    /// The compact form does not fit in 256 bits.
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
    /// The target is zero.
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
    /// The target is easier than the network allows.
    #[error("target {bits:#010x} is above the network's proof-of-work limit")]
    AboveLimit {
        /// The header's `nBits`.
        bits: u32,
    },
    /// The hash is above the target.
    #[error("block hash {hash} does not meet its target {bits:#010x}")]
    HashAboveTarget {
        /// The header's hash.
        hash: BlockHash,
        /// The header's `nBits`.
        bits: u32,
    },
}

/// A proof-of-work target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Target(pub U256);

impl Target {
    /// Decodes the compact `nBits` form, as `arith_uint256::SetCompact`, rejecting negative,
    /// overflowing and zero targets.
    pub fn from_compact(bits: u32) -> Result<Self, PowError> {
        let size = bits >> 24;
        let mut mantissa = bits & 0x007f_ffff;
        let value = if size <= 3 {
            // As Core: the word is shifted first, and the sign test below sees the result.
            mantissa >>= 8 * (3 - size);
            U256::from_u64(u64::from(mantissa))
        } else {
            let shift = 8 * (size - 3);
            if mantissa != 0
                && (size > 34 || (mantissa > 0xff && size > 33) || (mantissa > 0xffff && size > 32))
            {
                return Err(PowError::Overflow(bits));
            }
            let mut bytes = [0u8; 32];
            let m = mantissa.to_le_bytes();
            for (i, b) in m.iter().take(3).enumerate() {
                let pos = shift as usize / 8 + i;
                if pos < 32 {
                    bytes[pos] = *b;
                }
            }
            U256::from_le_bytes(bytes)
        };
        if mantissa != 0 && bits & 0x0080_0000 != 0 {
            return Err(PowError::Negative(bits));
        }
        if value.is_zero() {
            return Err(PowError::Zero(bits));
        }
        Ok(Self(value))
    }

    /// The compact form, as `arith_uint256::GetCompact`.
    pub fn to_compact(self) -> u32 {
        let mut size = self.0.bits().div_ceil(8);
        let mut compact = if size <= 3 {
            (self.0.low_u64() << (8 * (3 - size))) as u32
        } else {
            let shifted = U256::from_le_bytes({
                let bytes = self.0.to_le_bytes();
                let mut out = [0u8; 32];
                let start = (size - 3) as usize;
                out[..32 - start].copy_from_slice(&bytes[start..]);
                out
            });
            shifted.low_u64() as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact | (size << 24)
    }

    /// The expected number of hashes to meet this target: `2^256 / (target + 1)`.
    pub fn work(self) -> U256 {
        // 2^256 / (t + 1) == (~t / (t + 1)) + 1, which stays inside 256 bits.
        match self.0.checked_add(U256::ONE) {
            None => U256::ONE,
            Some(denominator) => (!self.0).div_u256(denominator).saturating_add(U256::ONE),
        }
    }

    /// Whether `hash`, read as a little-endian number, is at most this target.
    pub fn is_met_by(self, hash: BlockHash) -> bool {
        U256::from_le_bytes(hash.0) <= self.0
    }
}

impl Header {
    /// The header's target, checked against the network's `pow_limit`.
    pub fn target(&self, pow_limit: Target) -> Result<Target, PowError> {
        let target = Target::from_compact(self.bits)?;
        if target > pow_limit {
            return Err(PowError::AboveLimit { bits: self.bits });
        }
        Ok(target)
    }

    /// Checks that the header's hash meets the target its `nBits` claim, and that the target
    /// is within `pow_limit`.
    pub fn check_proof_of_work(&self, pow_limit: Target) -> Result<(), PowError> {
        let target = self.target(pow_limit)?;
        let hash = self.block_hash();
        if !target.is_met_by(hash) {
            return Err(PowError::HashAboveTarget {
                hash,
                bits: self.bits,
            });
        }
        Ok(())
    }

    /// The work this header proves (zero for an invalid `nBits`).
    pub fn work(&self) -> U256 {
        Target::from_compact(self.bits)
            .map(Target::work)
            .unwrap_or(U256::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compact_round_trips_known_values() {
        for bits in [
            0x1d00ffffu32,
            0x207fffff,
            0x1b0404cb,
            0x170e0408,
            0x1903a30c,
        ] {
            assert_eq!(Target::from_compact(bits).unwrap().to_compact(), bits);
        }
    }

    #[test]
    fn invalid_compact_forms_are_rejected() {
        assert_eq!(
            Target::from_compact(0x04923456),
            Err(PowError::Negative(0x04923456))
        );
        assert_eq!(
            Target::from_compact(0xff123456),
            Err(PowError::Overflow(0xff123456))
        );
        assert_eq!(
            Target::from_compact(0x01003456),
            Err(PowError::Zero(0x01003456))
        );
    }

    #[test]
    fn genesis_work_is_known() {
        // Work of difficulty 1 is 0x100010001.
        let t = Target::from_compact(0x1d00ffff).unwrap();
        assert_eq!(t.work(), U256::from_u64(0x1_0001_0001));
        // Regtest: 2.
        assert_eq!(
            Target::from_compact(0x207fffff).unwrap().work(),
            U256::from_u64(2)
        );
    }

    #[test]
    fn small_division_matches_u128() {
        let a = U256([123_456_789_012_345, 987, 0, 0]);
        let b = U256([1_000_003, 0, 0, 0]);
        let expected = ((987u128 << 64) | 123_456_789_012_345) / 1_000_003;
        let q = a.div_u256(b);
        assert_eq!(u128::from(q.0[0]) | (u128::from(q.0[1]) << 64), expected);
        assert_eq!(a.div_u64(1_000_003), q);
    }

    proptest! {
        #[test]
        fn mul_then_div_round_trips(limbs: [u64; 3], m in 1u64..u64::MAX) {
            let a = U256([limbs[0], limbs[1], limbs[2], 0]);
            if let Some(p) = a.checked_mul_u64(m) {
                prop_assert_eq!(p.div_u64(m), a);
                prop_assert_eq!(p.div_u256(U256::from_u64(m)), a);
            }
        }

        #[test]
        fn compact_normalises(bits in 0x03000001u32..0x21000000) {
            if let Ok(t) = Target::from_compact(bits) {
                let again = Target::from_compact(t.to_compact()).unwrap();
                prop_assert_eq!(again, t);
            }
        }
    }
}
