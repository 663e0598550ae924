//! Marks whether the real data sets are here (`cfg(has_mnist)`,
//! `cfg(has_fashion_mnist)`), so that the tests needing them run, or show as
//! ignored with the reason.

#[path = "tests/common/find_data.rs"]
mod find_data;

fn main() {
    find_data::build_script("tests/common/find_data.rs");
}
