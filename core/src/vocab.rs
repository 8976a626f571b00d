//! Vocabularies: small enums that serialise to snake-case names (run statuses, tool
//! decisions, loop triggers, critic verdicts). [`vocabulary!`](crate::vocabulary) gives each
//! its `Display` and comparisons with the name, so stored rows and JSON keep their text while
//! code matches on the enum.

/// For an enum with `fn as_str(self) -> &'static str`: `Display` as that name, and `==` with
/// `str` / `&str` comparing the name.
#[macro_export]
#[doc(hidden)]
macro_rules! vocabulary {
    ($ty:ty) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::cmp::PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl ::std::cmp::PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
