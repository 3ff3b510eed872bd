//! The spec↔code↔test registry.
//!
//! Every equation in `spec/*.md` sits on a line of its own as a label, `r[ns.topic.name]`
//! (the Rust Reference's convention). Exactly one function implements it, and that function
//! cites the label in the **first line** of its doc comment. The function's name is the label
//! without its namespace, with dots turned into underscores: `r[bp.grad.w5]` ↔ `fn grad_w5`,
//! `r[cnn.conv.forward]` ↔ `fn conv_forward`.
//!
//! Every label is also cited by at least one test: a `#[test]` function in `tests/**/*.rs`
//! (or a function inside a `proptest! { … }` block) whose doc comment has a line starting with
//! `Verifies` followed by one or more `r[label]` tokens:
//!
//! ```text
//! /// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] against central differences.
//! #[test]
//! fn conv3x3_gradients_match_central_differences() {
//! ```
//!
//! The registry is read from the sources themselves, so it cannot drift from the code; [`check`]
//! reports orphans on either side, duplicates, misnamed and stub functions, labels no test
//! cites and citations that are not on a test.
//!
//! The registry cannot be fooled by text that only looks like a label, a citation or code:
//! - in markdown ([`markdown`]), a label must sit outside fenced code blocks and be indented by
//!   at most three spaces;
//! - in Rust, a small lexer ([`lexer`]) blanks out comments and literals before anything is
//!   read ([`rust`]);
//! - a labelled function must be compiled library code: reached from `src/lib.rs` through `mod`
//!   declarations (`#[path]` respected, `#[cfg(test)]` modules left out), not under a `cfg`
//!   that is never true ([`cfg`]), and with a body that does more than panic;
//! - a citation counts only on a test that cargo compiles and runs: a `#[test]` (or `proptest!`)
//!   function in a test target or a file one reaches by `mod`, not ignored in any spelling
//!   (`cfg_attr` included), not under a never-true `cfg`, with a non-empty body, and, in a
//!   `proptest!` block, with its case count fixed in code.
//!
//! Layout: [`markdown`] reads the spec, [`lexer`] and [`rust`] read the code and the tests,
//! [`cfg`] judges `cfg` predicates, and [`registry`] loads the tree and checks it.
//!
//! [`check`]: Registry::check
use std::fmt;
use std::path::PathBuf;

mod cfg;
mod lexer;
mod markdown;
mod registry;
mod rust;

pub use markdown::spec_labels;
pub use registry::{CoverageRow, Registry};
pub use rust::{FIXED_CASES, code_entries, test_citations};

/// Where a label was found: file (relative to the project root when loaded with
/// [`Registry::load`]) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The file the label was found in.
    pub file: PathBuf,
    /// The 1-based line number within `file`.
    pub line: usize,
}

impl Site {
    /// The file with `/` separators, whatever the platform.
    pub fn file_str(&self) -> String {
        self.file.to_string_lossy().replace('\\', "/")
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file_str(), self.line)
    }
}

/// One function of the code's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeEntry {
    /// The label the function cites in the first line of its doc comment.
    pub label: String,
    /// The function's name.
    pub function: String,
    /// Where the function is defined (the line of its `fn`).
    pub site: Site,
    /// The body only panics: nothing but `panic!`, `todo!`, `unimplemented!` or `unreachable!`
    /// calls.
    pub stub: bool,
    /// Why the function is not compiled library code, if it is not: its file is outside the
    /// module tree of `src/lib.rs`, or it sits under a `cfg` that is never true.
    pub not_compiled: Option<String>,
}

/// One label cited by one test function (a `/// Verifies r[…] …` doc line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCitation {
    /// The cited label, as written (it may name no equation).
    pub label: String,
    /// `<file stem>::<fn name>`, e.g. `cnn_semantics::eval_mode_normalises_with_the_running_statistics`.
    pub test: String,
    /// The line of the `fn` (or of the doc line when no function follows it).
    pub site: Site,
    /// Why the cited item is not a test that runs, if it is not one.
    pub not_a_test: Option<String>,
}

/// A violation of the spec↔code↔test registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A label in the spec that no function cites.
    EquationWithoutFunction {
        /// The equation's label.
        label: String,
        /// Where the spec defines the label.
        site: Site,
    },
    /// A function citing a label that no spec defines.
    FunctionWithoutEquation {
        /// The label the function cites.
        label: String,
        /// The citing function's name.
        function: String,
        /// Where the function is defined.
        site: Site,
    },
    /// A label defined twice in the spec.
    DuplicateEquation {
        /// The label defined twice.
        label: String,
        /// Where the spec defines it first.
        first: Site,
        /// Where the spec defines it again.
        second: Site,
    },
    /// A label cited by two functions.
    DuplicateFunction {
        /// The label cited twice.
        label: String,
        /// The first function citing it.
        first: Site,
        /// The second function citing it.
        second: Site,
    },
    /// A function whose name does not follow the label.
    Misnamed {
        /// The label the function cites.
        label: String,
        /// The function's actual name.
        function: String,
        /// The name the label calls for (the label without its namespace, dots as underscores).
        expected: String,
        /// Where the function is defined.
        site: Site,
    },
    /// A labelled function whose body only panics (`panic!`, `todo!`, `unimplemented!`,
    /// `unreachable!`).
    StubFunction {
        /// The label the function cites.
        label: String,
        /// The stub function's name.
        function: String,
        /// Where the function is defined.
        site: Site,
    },
    /// A labelled function that is not compiled library code.
    FunctionNotCompiled {
        /// The label the function cites.
        label: String,
        /// The function's name.
        function: String,
        /// Why it is not compiled.
        reason: String,
        /// Where the function is defined.
        site: Site,
    },
    /// A label in the spec that no test cites.
    EquationWithoutTest {
        /// The equation's label.
        label: String,
        /// Where the spec defines the label.
        site: Site,
    },
    /// A test citing a label that no spec defines.
    TestCitesUnknownEquation {
        /// The label the test cites.
        label: String,
        /// The citing test, as `<file stem>::<fn name>`.
        test: String,
        /// Where the test (or its citing doc line) is.
        site: Site,
    },
    /// A `Verifies r[…]` doc line on something that is not a test that runs.
    CitationNotOnTest {
        /// The cited label.
        label: String,
        /// The citing item, as `<file stem>::<name>`.
        item: String,
        /// Why the item is not a test that runs.
        reason: String,
        /// Where the item (or the citing doc line) is.
        site: Site,
    },
}

impl Problem {
    /// The label the problem is about.
    pub fn label(&self) -> &str {
        match self {
            Problem::EquationWithoutFunction { label, .. }
            | Problem::FunctionWithoutEquation { label, .. }
            | Problem::DuplicateEquation { label, .. }
            | Problem::DuplicateFunction { label, .. }
            | Problem::Misnamed { label, .. }
            | Problem::StubFunction { label, .. }
            | Problem::FunctionNotCompiled { label, .. }
            | Problem::EquationWithoutTest { label, .. }
            | Problem::TestCitesUnknownEquation { label, .. }
            | Problem::CitationNotOnTest { label, .. } => label,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::EquationWithoutFunction { label, site } => {
                write!(f, "{site}: equation r[{label}] has no function")
            }
            Problem::FunctionWithoutEquation {
                label,
                function,
                site,
            } => write!(
                f,
                "{site}: fn {function} cites r[{label}], which no spec defines"
            ),
            Problem::DuplicateEquation {
                label,
                first,
                second,
            } => {
                write!(
                    f,
                    "{second}: equation r[{label}] is defined again (first at {first})"
                )
            }
            Problem::DuplicateFunction {
                label,
                first,
                second,
            } => {
                write!(
                    f,
                    "{second}: r[{label}] is cited by a second function (first at {first})"
                )
            }
            Problem::Misnamed {
                label,
                function,
                expected,
                site,
            } => write!(
                f,
                "{site}: fn {function} cites r[{label}] but should be named {expected}"
            ),
            Problem::StubFunction {
                label,
                function,
                site,
            } => write!(
                f,
                "{site}: fn {function} cites r[{label}] but its body only panics (panic!/todo!/unimplemented!/unreachable!)"
            ),
            Problem::FunctionNotCompiled {
                label,
                function,
                reason,
                site,
            } => write!(f, "{site}: fn {function} cites r[{label}] but {reason}"),
            Problem::EquationWithoutTest { label, site } => {
                write!(
                    f,
                    "{site}: equation r[{label}] is cited by no test (`/// Verifies r[{label}]`)"
                )
            }
            Problem::TestCitesUnknownEquation { label, test, site } => write!(
                f,
                "{site}: test {test} cites r[{label}], which no spec defines"
            ),
            Problem::CitationNotOnTest {
                label,
                item,
                reason,
                site,
            } => write!(f, "{site}: {item} cites r[{label}] but {reason}"),
        }
    }
}

/// The function name a label requires: namespace dropped, dots to underscores.
pub fn function_name_for(label: &str) -> String {
    let rest = label.split_once('.').map(|(_, r)| r).unwrap_or(label);
    rest.replace(['.', '-'], "_")
}

fn parse_label(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("r[")?.strip_suffix(']')?;
    // A label has a namespace: at least one dot (so prose such as `r[label]` is not one).
    let ok = inner.contains('.')
        && !inner.starts_with('.')
        && inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    ok.then_some(inner)
}
