//! Bitcoin's consensus formats and the header chain.
