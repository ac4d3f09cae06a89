pub(crate) mod units;
