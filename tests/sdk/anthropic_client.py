"""Drives sluice's /v1/messages with the official Anthropic Python SDK, as an application would.

Usage: python3 anthropic_client.py BASE_URL API_KEY [count_tokens]
Exits non-zero (with a message) on the first expectation that does not hold.
"""

import sys

import anthropic

TOOLS = [{
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]


def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    count_tokens = len(sys.argv) > 3 and sys.argv[3] == "count_tokens"
    client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=30)

    m = client.messages.create(
        model="claude-fast",
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    assert m.model == "claude-fast", m.model
    assert m.role == "assistant" and m.type == "message"
    assert m.content[0].type == "text" and "Say hello" in m.content[0].text, m.content
    assert m.stop_reason == "end_turn", m.stop_reason
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage

    # Streamed, through the SDK's event accumulator.
    with client.messages.stream(
        model="claude-fast", max_tokens=256, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Say hello" in text, text
    assert final.stop_reason == "end_turn", final.stop_reason
    assert final.usage.output_tokens > 0, final.usage
    assert final.model == "claude-fast", final.model

    # Tool use, whole and streamed; then the tool's result goes back.
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    m = client.messages.create(model="claude-fast", max_tokens=256, messages=messages, tools=TOOLS)
    assert m.stop_reason == "tool_use", m.stop_reason
    use = [b for b in m.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and use.input == {"city": "Paris", "unit": "celsius"}, use
    with client.messages.stream(
        model="claude-fast", max_tokens=256, messages=messages, tools=TOOLS
    ) as stream:
        final = stream.get_final_message()
    streamed = [b for b in final.content if b.type == "tool_use"][0]
    assert streamed.input == {"city": "Paris", "unit": "celsius"}, streamed
    assert final.stop_reason == "tool_use", final.stop_reason
    m = client.messages.create(
        model="claude-fast",
        max_tokens=256,
        tools=TOOLS,
        messages=messages + [
            {"role": "assistant", "content": [b.model_dump() for b in m.content]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees"},
            ]},
        ],
    )
    assert m.content, m

    if count_tokens:
        n = client.messages.count_tokens(model="claude-fast", messages=[{"role": "user", "content": "Say hello"}])
        assert n.input_tokens > 0, n

    # Errors arrive as the SDK's typed exceptions, in Anthropic's error shape.
    try:
        client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected NotFoundError")
    except anthropic.NotFoundError as exc:
        assert exc.body["error"]["type"] == "not_found_error", exc.body
    try:
        anthropic.Anthropic(base_url=base_url, api_key="sk-test-wrong", max_retries=0).messages.create(
            model="claude-fast", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected AuthenticationError")
    except anthropic.AuthenticationError:
        pass
    try:
        client.messages.create(model="claude-fast", messages=[{"role": "user", "content": "x"}], max_tokens=None)
    except (anthropic.BadRequestError, TypeError):
        pass

    # A provider error in the middle of a stream reaches the SDK as an exception.
    try:
        with client.messages.stream(
            model="claude-fast", max_tokens=256,
            messages=[{"role": "user", "content": "sluice-mock-fault:error-mid-stream"}],
        ) as stream:
            for _ in stream:
                pass
        raise AssertionError("expected an error mid-stream")
    except anthropic.APIError as exc:
        assert "rror" in str(exc) or exc.message, exc

    print("anthropic SDK: all checks passed")


if __name__ == "__main__":
    main()
