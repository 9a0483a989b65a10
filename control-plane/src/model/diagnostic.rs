//! What validation tells an operator: which file, which resource, which field, and why.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The resource (or file) is rejected; the last good version stays in effect.
    Error,
    /// The resource is accepted; something in it deserves attention.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in the configuration.
///
/// Displays as `file:line:column: severity: Kind namespace/name: field: message`, leaving out
/// the parts that are unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based.
    pub column: Option<usize>,
    /// `VirtualService default/reviews`.
    pub resource: Option<String>,
    /// `spec.http[0].route[1].weight`.
    pub field: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(severity: Severity, file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            file: file.into(),
            line: None,
            column: None,
            resource: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn error(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Error, file, message)
    }

    pub fn warning(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Warning, file, message)
    }

    pub fn with_resource(mut self, resource: impl fmt::Display) -> Self {
        self.resource = Some(resource.to_string());
        self
    }

    pub fn with_field(mut self, field: impl fmt::Display) -> Self {
        let field = field.to_string();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    pub fn at(mut self, position: Option<(usize, usize)>) -> Self {
        if let Some((line, column)) = position {
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}: ", self.severity)?;
        if let Some(resource) = &self.resource {
            write!(f, "{resource}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Counts of errors and warnings, for one-line summaries.
pub fn count(diagnostics: &[Diagnostic]) -> (usize, usize) {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors, diagnostics.len() - errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_position_resource_and_field() {
        let d = Diagnostic::error(
            "routes/reviews.yaml",
            "weights sum to 90, they must sum to 100",
        )
        .at(Some((12, 9)))
        .with_resource("VirtualService default/reviews")
        .with_field("spec.http[0].route");
        assert_eq!(
            d.to_string(),
            "routes/reviews.yaml:12:9: error: VirtualService default/reviews: spec.http[0].route: \
             weights sum to 90, they must sum to 100"
        );
        let bare = Diagnostic::warning("a.yaml", "empty");
        assert_eq!(bare.to_string(), "a.yaml: warning: empty");
    }
}
