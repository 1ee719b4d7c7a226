"""Drives sluice's /v1/responses with the official OpenAI Python SDK (`client.responses`).

Usage: python3 responses_client.py BASE_URL API_KEY
Exits non-zero (with a message) on the first expectation that does not hold.
"""

import json
import sys

import openai
from openai import OpenAI

TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]


def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)

    r = client.responses.create(model="gpt-4o-mini", input="Say hello", instructions="Be brief.", store=False)
    assert r.status == "completed", r.status
    assert r.model == "gpt-4o-mini", r.model
    assert "Say hello" in r.output_text, r.output_text
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage

    # Streamed: typed events, then the completed response.
    text, completed = "", None
    with client.responses.stream(model="gpt-4o-mini", input=[{"role": "user", "content": "Say hello"}]) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type == "response.completed":
                completed = event.response
        final = stream.get_final_response()
    assert "Say hello" in text, text
    assert completed is not None and completed.usage.output_tokens > 0, completed
    assert final.output_text == text, (final.output_text, text)

    # Function calls, whole and streamed; then the function's output goes back.
    r = client.responses.create(model="gpt-4o-mini", input="Weather in Paris?", tools=TOOLS)
    call = [o for o in r.output if o.type == "function_call"][0]
    assert call.name == "get_weather", call
    assert json.loads(call.arguments) == {"city": "Paris", "unit": "celsius"}, call.arguments
    args = ""
    with client.responses.stream(model="gpt-4o-mini", input="Weather in Paris?", tools=TOOLS) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                args += event.delta
        final = stream.get_final_response()
    assert json.loads(args) == {"city": "Paris", "unit": "celsius"}, args
    assert [o for o in final.output if o.type == "function_call"], final.output
    r = client.responses.create(
        model="gpt-4o-mini",
        tools=TOOLS,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"},
        ],
    )
    assert r.status == "completed", r

    # Stateful features are refused clearly: sluice keeps no responses.
    try:
        client.responses.create(model="gpt-4o-mini", input="x", previous_response_id="resp_123")
        raise AssertionError("expected BadRequestError")
    except openai.BadRequestError as exc:
        assert exc.body["param"] == "previous_response_id", exc.body
    try:
        client.responses.create(model="no-such-model", input="x")
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError:
        pass

    # A provider error in the middle of a stream arrives as the API's `error` and
    # `response.failed` events, never as a completed response.
    with client.responses.stream(model="gpt-4o-mini", input="sluice-mock-fault:error-mid-stream") as stream:
        types = [event.type for event in stream]
    assert "error" in types, types
    assert "response.completed" not in types, types

    print("responses SDK: all checks passed")


if __name__ == "__main__":
    main()
