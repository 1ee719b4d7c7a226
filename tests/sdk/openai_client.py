"""Drives sluice with the official OpenAI Python SDK, exactly as an application would.

Usage: python3 openai_client.py BASE_URL API_KEY
Exits non-zero (with a message) on the first expectation that does not hold.
"""

import json
import sys

import openai
from openai import OpenAI


# A 1x1 transparent PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)

    # Non-stream chat completion.
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    assert r.model == "gpt-4o-mini", r.model
    assert r.choices[0].message.role == "assistant"
    assert "Say hello" in r.choices[0].message.content, r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.total_tokens > 0

    # Streamed chat completion, with and without usage.
    text, finish, n = "", None, 0
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
    ):
        n += 1
        assert chunk.model == "gpt-4o-mini", chunk.model
        assert chunk.usage is None
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert n > 3, n
    assert "Say hello" in text, text
    assert finish == "stop", finish

    usage = None
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens > 0, usage

    # Tool calls, whole and streamed: arguments arrive as a JSON string.
    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls", r.choices[0].finish_reason
    assert call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}, call
    args, name, call_id, finish = "", None, None, None
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=tools, stream=True
    ):
        for c in chunk.choices:
            for d in c.delta.tool_calls or []:
                assert d.index == 0, d
                name = d.function.name or name if d.function else name
                call_id = d.id or call_id
                args += (d.function.arguments or "") if d.function else ""
            finish = c.finish_reason or finish
    assert name == "get_weather" and call_id, (name, call_id)
    assert json.loads(args) == {"city": "Paris", "unit": "celsius"}, args
    assert finish == "tool_calls", finish

    # The tool's answer goes back with the assistant's call; an image as a data URL.
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages + [
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
            ]},
        ],
    )
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content, r

    # A provider error in the middle of a stream reaches the SDK as an APIError.
    try:
        for _ in client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "sluice-mock-fault:error-mid-stream"}],
            stream=True,
        ):
            pass
        raise AssertionError("expected an APIError mid-stream")
    except openai.APIError as exc:
        assert exc.message, exc

    # Embeddings and models.
    e = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0
    ids = sorted(m.id for m in client.models.list())
    assert ids == ["embed", "gpt-4o-mini", "other-model"], ids
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"

    # Errors arrive as the SDK's typed exceptions.
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError as exc:
        assert exc.code == "model_not_found", exc.code
    try:
        OpenAI(base_url=base_url, api_key="sk-test-wrong", max_retries=0).models.list()
        raise AssertionError("expected AuthenticationError")
    except openai.AuthenticationError as exc:
        assert exc.status_code == 401

    print("openai SDK: all checks passed")


if __name__ == "__main__":
    main()
