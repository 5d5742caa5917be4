use perf_runtime::{perf_backend, perf_endpoint, perf_stage};

async fn check(key: &str) -> bool {
    !key.is_empty()
}

#[perf_endpoint("/v1/in-macro")]
async fn handler(key: &str) -> bool {
    let (user, answer) = tokio::join!(
        async {
            #[perf_stage(auth_validation)]
            let user = check(key).await;
            user
        },
        async {
            #[perf_runtime::perf_backend(provider = "openrouter", model = "gpt-4o")]
            let answer = check("model").await;
            answer
        },
    );
    tokio::select! {
        ok = check(key) => {
            #[perf_stage(request_parsing)]
            let all = ok && user && answer;
            all
        }
    }
}

#[perf_backend(provider = "openrouter", model = "gpt-4o")]
fn parts(body: &str) -> Vec<&str> {
    let mut parts = vec![#[perf_stage(request_parsing)] body.split(',').count()];
    parts.clear();
    body.split(',').collect()
}

fn main() {}
