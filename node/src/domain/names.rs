//! The forms under which a member's name is found: the name itself
//! (lower-cased), and for Chinese names the full pinyin without tones and
//! the pinyin initials — 张三 is found by 张, zhangsan and zs. A
//! surname may have several readings (曾: ceng, zeng; 单: dan, shan): each
//! reading of the first character gives its own forms, so 曾 is found by
//! zeng as well as by the dictionary's first reading.
//!
//! The readings come from the `pinyin` crate's tables, which are part of
//! the binary: every node indexes the same forms as long as they run the
//! same release (a new table in a later release changes only how names
//! written after the upgrade are indexed; the index is rebuilt from the
//! names on restore).

use pinyin::{ToPinyin, ToPinyinMulti};

/// At most this many readings of the first character are indexed.
const SURNAME_READINGS: usize = 3;

/// Every search form of `name`, lower-case, without duplicates, the name
/// itself first.
pub fn search_forms(name: &str) -> Vec<String> {
    let mut out = vec![name.to_lowercase()];
    if !name.chars().any(|c| c.to_pinyin().is_some()) {
        return out;
    }
    let mut chars = name.chars().peekable();
    // Skip anything before the first letter or Han character.
    while chars
        .peek()
        .is_some_and(|c| !c.is_alphanumeric() && c.to_pinyin().is_none())
    {
        chars.next();
    }
    let first = chars.next();
    let rest: String = chars.collect();
    let (rest_full, rest_initials) = spell(&rest, first.is_some_and(is_word_char));
    let readings: Vec<String> = match first {
        Some(c) => match c.to_pinyin_multi() {
            Some(m) => m
                .into_iter()
                .map(|p| p.plain().to_string())
                .take(SURNAME_READINGS)
                .collect(),
            None => vec![c.to_lowercase().collect()],
        },
        None => Vec::new(),
    };
    for r in readings {
        let initial: String = r.chars().take(1).collect();
        for form in [
            format!("{r}{rest_full}"),
            format!("{initial}{rest_initials}"),
        ] {
            if !form.is_empty() && !out.contains(&form) {
                out.push(form);
            }
        }
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && c.to_pinyin().is_none()
}

/// Full pinyin and initials of `s`; letters and digits of other scripts
/// are kept (lower-cased), each word giving its first letter to the
/// initials. `in_word`: the text before `s` ended inside such a word.
fn spell(s: &str, mut in_word: bool) -> (String, String) {
    let mut full = String::new();
    let mut initials = String::new();
    for c in s.chars() {
        if let Some(p) = c.to_pinyin() {
            full.push_str(p.plain());
            initials.push_str(p.first_letter());
            in_word = false;
        } else if c.is_alphanumeric() {
            let lower: String = c.to_lowercase().collect();
            full.push_str(&lower);
            if !in_word {
                initials.push_str(&lower);
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    (full, initials)
}

#[cfg(test)]
mod tests {
    use super::search_forms;

    #[test]
    fn chinese_names_are_found_by_pinyin_and_initials() {
        assert_eq!(search_forms("张三"), ["张三", "zhangsan", "zs"]);
        assert_eq!(search_forms("欧阳娜娜"), ["欧阳娜娜", "ouyangnana", "oynn"]);
        let f = search_forms("曾小贤");
        assert!(f.contains(&"zengxiaoxian".to_string()), "{f:?}");
        assert!(f.contains(&"cengxiaoxian".to_string()), "{f:?}");
        assert!(f.contains(&"zxx".to_string()), "{f:?}");
    }

    #[test]
    fn other_names_are_their_lowercase() {
        assert_eq!(search_forms("Li Lei"), ["li lei"]);
        assert_eq!(search_forms(""), [""]);
    }

    #[test]
    fn mixed_names_keep_their_letters() {
        let f = search_forms("张Tom");
        assert!(f.contains(&"zhangtom".to_string()), "{f:?}");
        assert!(f.contains(&"zt".to_string()), "{f:?}");
        let f = search_forms("Anna 王");
        assert!(f.contains(&"annawang".to_string()), "{f:?}");
        assert!(f.contains(&"aw".to_string()), "{f:?}");
    }
}
