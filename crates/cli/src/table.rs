//! Plain aligned text tables: a header row and columns padded to the widest
//! cell, separated by two spaces. No borders, so output stays greppable.
//! Cells are escaped as single lines when added: they mostly hold server
//! text, and a newline or tab in one would break (or forge) rows.

use super::sanitize::escape_line;

/// A table being built row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            headers: headers.into_iter().map(cell).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row. Missing cells are blank; extra cells widen the table.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(cell).collect());
    }

    /// Whether no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row (header first), each line
    /// without trailing blanks and ending in a newline.
    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain(std::iter::once(self.headers.len()))
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = line.get(i).map_or("", String::as_str);
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = width - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A cell's text, escaped.
fn cell(text: impl Into<String>) -> String {
    let text = text.into();
    match escape_line(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        escaped => escaped.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let mut table = Table::new(["ID", "NAME", "UNREAD"]);
        table.row(["1", "alice", "0"]);
        table.row(["12", "bo", "3"]);
        assert_eq!(
            table.render(),
            "ID  NAME   UNREAD\n\
             1   alice  0\n\
             12  bo     3\n"
        );
    }

    #[test]
    fn short_rows_and_unicode_widths() {
        let mut table = Table::new(["A", "B"]);
        table.row(["é", "x", "extra"]);
        table.row(["long"]);
        assert_eq!(table.render(), "A     B\né     x  extra\nlong\n");
    }

    #[test]
    fn cells_cannot_break_or_forge_rows() {
        let mut table = Table::new(["ID", "NAME"]);
        table.row(["1", "eve\n2   mallory\t\x1b[2J"]);
        assert_eq!(
            table.render(),
            "ID  NAME\n\
             1   eve\\n2   mallory\\t\\x1b[2J\n"
        );
    }

    #[test]
    fn an_empty_table_is_just_the_header() {
        let table = Table::new(["X", "Y"]);
        assert!(table.is_empty());
        assert_eq!(table.render(), "X  Y\n");
    }
}
