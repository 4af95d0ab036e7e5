//! Terminal output: aligned tables and colored status words.

use std::io::Write;

use artifacts_engine::Status;
use console::{Style, measure_text_width};

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(measure_text_width(cell));
            }
        }
        let bold = Style::new().bold();
        let header: Vec<String> = self
            .header
            .iter()
            .map(|h| bold.apply_to(h).to_string())
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - measure_text_width(cell) + 2;
                    line.push_str(&" ".repeat(pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

pub fn paint_status(status: &Status, text: &str) -> String {
    let style = match status {
        Status::Ok | Status::Passthrough => Style::new().green(),
        Status::Untracked { .. } => Style::new().cyan(),
        Status::Missing
        | Status::Elsewhere { .. }
        | Status::Stale { .. }
        | Status::RecipientsChanged => Style::new().yellow(),
        Status::Error { .. } => Style::new().red().bold(),
    };
    style.apply_to(text).to_string()
}
