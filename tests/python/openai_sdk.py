"""Drives the example gateway with OpenAI's official Python SDK, one step per line of stdin.

Usage: python3 openai_sdk.py BASE_URL API_KEY. Each line read names a step; the script answers
it with one line of JSON on stdout: what the SDK returned (or the error it raised, by class),
for tests/gateway/openai_sdk.rs to check beside /metrics. An unexpected exception is answered
as {"exception": ...}. The SDK never retries (max_retries=0): each step is one request.
"""

import json
import sys

import openai

BASE_URL, API_KEY = sys.argv[1], sys.argv[2]
PROMPT = "Count my tokens, please: forty-four chars."
MESSAGES = [{"role": "user", "content": PROMPT}]

client = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=30)


def usage(value):
    return value.model_dump() if value is not None else None


def chat_stream(**options):
    text, usage_chunks, usage_seen = "", 0, None
    for chunk in client.chat.completions.create(
        model="sdk-chat", messages=MESSAGES, stream=True, **options
    ):
        if not chunk.choices:
            usage_chunks += 1
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.usage is not None:
            usage_seen = usage(chunk.usage)
    return {"text": text, "usage_chunks": usage_chunks, "usage": usage_seen}


def responses_stream():
    text, kinds, final = "", [], None
    for event in client.responses.create(model="sdk-responses", input=PROMPT, stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            final = usage(event.response.usage)
    return {"text": text, "usage": final, "first": kinds[0], "last": kinds[-1]}


def failure(call, expected):
    try:
        call()
    except expected as e:
        return {"error": type(e).__name__, "status": e.status_code, "code": e.code}
    return {"error": None}


def embeddings(**options):
    answer = client.embeddings.create(
        model="text-embedding-3-small", input=["hello", "a longer text"], **options
    )
    return {
        "count": len(answer.data),
        "dimensions": len(answer.data[0].embedding),
        "first": answer.data[0].embedding[:2],
        "usage": usage(answer.usage),
    }


STEPS = {
    "models": lambda: {"ids": [model.id for model in client.models.list()]},
    "chat": lambda: (
        lambda answer: {
            "text": answer.choices[0].message.content,
            "usage": usage(answer.usage),
        }
    )(client.chat.completions.create(model="sdk-chat", messages=MESSAGES)),
    "chat_stream": chat_stream,
    "chat_stream_usage": lambda: chat_stream(stream_options={"include_usage": True}),
    "responses": lambda: (
        lambda answer: {"text": answer.output_text, "usage": usage(answer.usage)}
    )(client.responses.create(model="sdk-responses", input=PROMPT)),
    "responses_stream": responses_stream,
    # The SDK asks for base64 unless told otherwise, and decodes it to floats.
    "embeddings": embeddings,
    "embeddings_float": lambda: embeddings(encoding_format="float"),
    "wrong_key": lambda: failure(
        lambda: openai.OpenAI(base_url=BASE_URL, api_key="wrong-key", max_retries=0)
        .chat.completions.create(model="sdk-chat", messages=MESSAGES),
        openai.AuthenticationError,
    ),
    "rate_limited": lambda: failure(
        lambda: client.chat.completions.create(model="fault:status-429", messages=MESSAGES),
        openai.RateLimitError,
    ),
}

for line in sys.stdin:
    step = line.strip()
    try:
        result = STEPS[step]()
    except Exception as e:  # reported to the test, which fails with it
        result = {"exception": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)
