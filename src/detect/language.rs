//! Don't accuse what you cannot judge: texts in languages the references do
//! not cover get no verdict.
//!
//! The references (and the encoder) know some languages; a text in another
//! one lands far from every reference and its neighbours vote on style they
//! cannot compare, which in practice calls human writing machine-made. The
//! language is identified with `whatlang` (trigram statistics, no model
//! files); when the identification is reliable and the language is not one
//! of the covered ones, the detection abstains: `label: "unknown"` with a
//! reason a moderator can read, the score still reported.
use std::collections::BTreeSet;

use serde::Serialize;
use whatlang::Lang;

/// Characters of a text read to identify its language.
const SAMPLE_CHARS: usize = 2_000;

/// Why a detection gave no verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Abstention {
    /// ISO 639-3 code of the identified language.
    pub language: String,
    pub reason: String,
}

/// The languages verdicts are given for.
#[derive(Debug, Clone, PartialEq)]
pub enum Languages {
    /// Every text gets a verdict.
    Any,
    /// ISO 639-3 codes (`eng`, `deu`, ...).
    Only(BTreeSet<&'static str>),
}

impl Default for Languages {
    /// The shipped references are English.
    fn default() -> Self {
        Self::Only(BTreeSet::from(["eng"]))
    }
}

/// Two-letter codes of common languages, accepted beside whatlang's
/// three-letter ones.
const TWO_LETTER: &[(&str, &str)] = &[
    ("en", "eng"),
    ("de", "deu"),
    ("fr", "fra"),
    ("es", "spa"),
    ("it", "ita"),
    ("pt", "por"),
    ("nl", "nld"),
    ("ru", "rus"),
    ("uk", "ukr"),
    ("pl", "pol"),
    ("tr", "tur"),
    ("ar", "ara"),
    ("zh", "cmn"),
    ("ja", "jpn"),
    ("ko", "kor"),
    ("hi", "hin"),
    ("id", "ind"),
    ("vi", "vie"),
    ("sv", "swe"),
    ("cs", "ces"),
];

impl Languages {
    /// `any`, or a comma-separated list of ISO 639-3 codes (or common
    /// two-letter ones): `eng`, `en,de`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        if spec.trim() == "any" {
            return Ok(Self::Any);
        }
        let mut set = BTreeSet::new();
        for code in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let three = TWO_LETTER
                .iter()
                .find(|(two, _)| *two == code)
                .map_or(code, |(_, three)| three);
            let lang = Lang::from_code(three).ok_or_else(|| {
                format!("unknown language {code:?} (ISO 639-3 codes such as eng, deu, or any)")
            })?;
            set.insert(lang.code());
        }
        if set.is_empty() {
            return Err("name at least one language, or any".into());
        }
        Ok(Self::Only(set))
    }

    /// Whether to abstain on `text`, and why.
    pub fn judge(&self, text: &str) -> Option<Abstention> {
        let Self::Only(covered) = self else {
            return None;
        };
        let end = text
            .char_indices()
            .nth(SAMPLE_CHARS)
            .map_or(text.len(), |(i, _)| i);
        let info = whatlang::detect(&text[..end])?;
        let lang = info.lang();
        if !info.is_reliable() || covered.contains(lang.code()) {
            return None;
        }
        Some(Abstention {
            language: lang.code().to_owned(),
            reason: format!(
                "the text is in {} ({}), a language the references do not cover ({}): \
                 no verdict; add references in it to judge such texts",
                lang.eng_name(),
                lang.code(),
                covered.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Any => "any".into(),
            Self::Only(set) => set.iter().copied().collect::<Vec<_>>().join(","),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Human texts written for this test, in languages and scripts the
    /// shipped references lack.
    pub const FOREIGN: &[(&str, &str)] = &[
        ("rus", "Вчера вечером мы долго сидели на кухне у бабушки, пили чай с вареньем и слушали, как она рассказывает о своей молодости в маленьком городе на Волге."),
        ("deu", "Gestern Abend saßen wir noch lange in der Küche meiner Großmutter, tranken Tee und hörten zu, wie sie von ihrer Jugend in einem kleinen Dorf an der Mosel erzählte."),
        ("cmn", "昨天晚上我们在奶奶家的厨房里坐了很久，一边喝茶一边听她讲她年轻时在江南小镇上的生活，窗外一直下着小雨。"),
        ("ind", "Kemarin sore kami duduk lama di dapur nenek, minum teh manis sambil mendengarkan ceritanya tentang masa mudanya di sebuah desa kecil dekat pantai."),
        ("spa", "Ayer por la tarde nos quedamos mucho tiempo en la cocina de la abuela, tomando té y escuchando sus historias de cuando era joven en un pueblo pequeño."),
        ("fra", "Hier soir, nous sommes restés longtemps dans la cuisine de ma grand-mère à boire du thé en écoutant les histoires de sa jeunesse dans un petit village."),
        ("jpn", "昨日の夜、私たちは祖母の台所で長い間お茶を飲みながら、彼女が若い頃に住んでいた小さな町の話を聞いていました。"),
    ];

    #[test]
    fn foreign_texts_abstain_and_english_ones_do_not() {
        let langs = Languages::default();
        for (code, text) in FOREIGN {
            let a = langs
                .judge(text)
                .unwrap_or_else(|| panic!("no abstention for {code}"));
            assert_eq!(a.language, *code);
            assert!(a.reason.contains("no verdict"), "{}", a.reason);
        }
        let english = "Yesterday evening we sat in my grandmother's kitchen for a long time, \
                       drinking tea and listening to her stories about growing up in a small town.";
        assert_eq!(langs.judge(english), None);
        assert_eq!(Languages::Any.judge(FOREIGN[0].1), None);
    }

    #[test]
    fn covered_languages_are_judged() {
        let langs = Languages::parse("en,de").unwrap();
        assert_eq!(langs.judge(FOREIGN[1].1), None);
        assert!(langs.judge(FOREIGN[0].1).is_some());
        assert_eq!(Languages::parse("eng").unwrap(), Languages::default());
        assert!(Languages::parse("xx").is_err());
        assert!(Languages::parse(",").is_err());
        assert_eq!(Languages::parse("any").unwrap(), Languages::Any);
    }

    #[test]
    fn unreliable_identifications_do_not_abstain() {
        // Too short to tell: a verdict, not an abstention.
        assert_eq!(Languages::default().judge("ok"), None);
    }
}
