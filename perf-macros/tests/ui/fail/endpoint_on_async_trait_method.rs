use perf_runtime::perf_endpoint;

#[async_trait::async_trait]
trait Handler {
    async fn handle(&self, body: String) -> Result<String, String>;
}

struct Chat;

#[async_trait::async_trait]
impl Handler for Chat {
    #[perf_endpoint("/v1/chat/completions")]
    async fn handle(&self, body: String) -> Result<String, String> {
        Ok(body)
    }
}

fn main() {}
