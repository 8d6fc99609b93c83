//! Integer conv kernels per CPU level (being written).
