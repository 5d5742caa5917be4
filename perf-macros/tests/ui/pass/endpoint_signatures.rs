//! #[perf_endpoint] keeps every kind of signature, and the handler future stays `Send`.

use std::fmt::Display;

use perf_runtime::perf_endpoint;

#[derive(Debug)]
struct ApiError;

impl From<std::num::ParseIntError> for ApiError {
    fn from(_: std::num::ParseIntError) -> Self {
        ApiError
    }
}

/// Generics, a where-clause, `?` through `From`, an early return.
#[perf_endpoint("/v1/generic")]
#[allow(clippy::needless_return)]
pub(crate) async fn generic<T, U: Display + Send>(value: T, label: U) -> Result<String, ApiError>
where
    T: AsRef<str> + Send,
{
    if value.as_ref().is_empty() {
        return Ok(format!("{label}: empty"));
    }
    let parsed: u32 = value.as_ref().parse()?;
    Ok(format!("{label}: {parsed}"))
}

/// `impl Trait` in argument and return position.
#[perf_endpoint("/v1/impl-trait")]
async fn impl_trait(items: impl IntoIterator<Item = u8> + Send) -> impl Display {
    items.into_iter().map(u32::from).sum::<u32>()
}

/// No return type; a lifetime.
#[perf_endpoint("/v1/unit")]
async fn unit<'a>(_text: &'a str) {}

struct Gateway {
    prefix: String,
}

impl Gateway {
    /// A method with `&self`.
    #[perf_endpoint("/v1/method")]
    async fn handle(&self, model: &str) -> String {
        format!("{}{model}", self.prefix)
    }

    /// A method taking `self` by value, returning `Self`-typed data.
    #[perf_endpoint("/v1/consume")]
    async fn consume(self) -> Self {
        self
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        assert_eq!(assert_send(generic("42", "n")).await.unwrap(), "n: 42");
        assert_eq!(generic("", "n").await.unwrap(), "n: empty");
        assert!(generic("x", "n").await.is_err());
        assert_eq!(assert_send(impl_trait(vec![1, 2])).await.to_string(), "3");
        assert_send(unit("x")).await;
        let gateway = Gateway { prefix: "p/".into() };
        assert_eq!(assert_send(gateway.handle("m")).await, "p/m");
        assert_eq!(gateway.consume().await.prefix, "p/");
    });
}
