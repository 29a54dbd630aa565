//! The verdict in large letters, readable from across a room.

use alloc::string::String;
use alloc::vec::Vec;

const ROWS: usize = 5;

fn glyph(c: char) -> [&'static str; ROWS] {
    match c {
        'A' => [" ### ", "#   #", "#####", "#   #", "#   #"],
        'D' => ["#### ", "#   #", "#   #", "#   #", "#### "],
        'E' => ["#####", "#    ", "#### ", "#    ", "#####"],
        'F' => ["#####", "#    ", "#### ", "#    ", "#    "],
        'G' => [" ####", "#    ", "#  ##", "#   #", " ####"],
        'H' => ["#   #", "#   #", "#####", "#   #", "#   #"],
        'I' => ["#####", "  #  ", "  #  ", "  #  ", "#####"],
        'L' => ["#    ", "#    ", "#    ", "#    ", "#####"],
        'N' => ["#   #", "##  #", "# # #", "#  ##", "#   #"],
        'O' => [" ### ", "#   #", "#   #", "#   #", " ### "],
        'T' => ["#####", "  #  ", "  #  ", "  #  ", "  #  "],
        'X' => ["#   #", " # # ", "  #  ", " # # ", "#   #"],
        _ => ["     ", "     ", "     ", "     ", "     "],
    }
}

/// `word` as five lines of block letters.
pub fn big(word: &str) -> Vec<String> {
    (0..ROWS)
        .map(|r| {
            let mut line = String::new();
            for c in word.chars() {
                line.push_str(glyph(c.to_ascii_uppercase())[r]);
                line.push_str("  ");
            }
            String::from(line.trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn five_rows() {
        let b = super::big("FIXED");
        assert_eq!(b.len(), 5);
        assert_eq!(b[0], "#####  #####  #   #  #####  ####");
    }
}
