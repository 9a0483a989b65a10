//! Plain-text tables for the inspection commands: upper-case headers, columns padded to their
//! widest cell, two spaces apart, as `istioctl` and `kubectl` print them.

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let t = super::render(
            &["NAME", "PORT"],
            &[
                vec!["a".into(), "80".into()],
                vec!["longer".into(), "9080".into()],
            ],
        );
        assert_eq!(t, "NAME    PORT\na       80\nlonger  9080\n");
    }
}
