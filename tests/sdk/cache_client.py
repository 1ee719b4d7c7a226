"""Reads answers replayed by sluice's response cache with the official SDKs' own parsers.

Usage: python3 cache_client.py BASE_URL API_KEY METRICS_URL API... (API: chat, messages,
responses). METRICS_URL is the admin listener's /metrics: an answer is stored just after the
client has it, so before asking for a hit the script waits for the store to be counted.
For each API: a whole answer (a miss) is replayed as a stream (a hit), a streamed answer (a
miss) is replayed whole and as a stream (hits), and a tool call survives both ways. Every
check compares what the SDK parsed from the hit with what it parsed from the miss.
Exits non-zero (with a message) on the first expectation that does not hold.
"""

import json
import sys
import time
import urllib.request
import uuid

import anthropic
from openai import OpenAI

CHAT_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}]
RESPONSES_TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}]
ANTHROPIC_TOOLS = [{
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}]


METRICS = ""
STORES = 0


def stored() -> None:
    """Waits until one more answer has been stored than before."""
    global STORES
    STORES += 1
    deadline = time.monotonic() + 30
    while True:
        text = urllib.request.urlopen(METRICS, timeout=10).read().decode()
        count = next((float(l.split()[1]) for l in text.splitlines()
                      if l.startswith("sluice_cache_stores_total ")), 0)
        if count >= STORES:
            return
        assert time.monotonic() < deadline, f"answer {STORES} was never stored"
        time.sleep(0.02)


def prompt(text: str) -> str:
    # A fresh question per run: nothing of an earlier run can be a hit.
    return f"{text} ({uuid.uuid4().hex[:8]})"


def expect(raw, outcome: str, what: str) -> None:
    got = raw.headers.get("x-sluice-cache")
    assert got == outcome, f"{what}: x-sluice-cache {got!r}, expected {outcome!r}"


def check_chat(base: str, key: str) -> None:
    client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
    create = client.chat.completions.with_raw_response.create

    def stream_of(raw):
        text, finish, usage, calls = "", None, None, {}
        for chunk in raw.parse():
            if chunk.usage is not None:
                usage = chunk.usage
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
                for t in c.delta.tool_calls or []:
                    call = calls.setdefault(t.index, {"id": None, "name": "", "arguments": ""})
                    call["id"] = t.id or call["id"]
                    call["name"] += (t.function and t.function.name) or ""
                    call["arguments"] += (t.function and t.function.arguments) or ""
        return text, finish, usage, calls

    q = [{"role": "user", "content": prompt("Tell me about rivers")}]
    raw = create(model="gpt-4o-mini", messages=q)
    expect(raw, "miss", "chat whole")
    whole = raw.parse()
    stored()
    raw = create(model="gpt-4o-mini", messages=q, stream=True, stream_options={"include_usage": True})
    expect(raw, "hit", "chat stream from a whole answer")
    text, finish, usage, _ = stream_of(raw)
    assert text == whole.choices[0].message.content, (text, whole.choices[0].message.content)
    assert finish == whole.choices[0].finish_reason, finish
    assert usage is not None and usage.total_tokens == whole.usage.total_tokens, usage

    q = [{"role": "user", "content": prompt("Tell me about lakes")}]
    raw = create(model="gpt-4o-mini", messages=q, stream=True)
    expect(raw, "miss", "chat stream")
    text, finish, usage, _ = stream_of(raw)
    assert usage is None, "no usage chunk was asked for"
    stored()
    raw = create(model="gpt-4o-mini", messages=q)
    expect(raw, "hit", "chat whole from a stream")
    whole = raw.parse()
    assert whole.choices[0].message.content == text and whole.choices[0].finish_reason == finish
    assert whole.usage is not None and whole.usage.completion_tokens > 0, whole.usage
    raw = create(model="gpt-4o-mini", messages=q, stream=True)
    expect(raw, "hit", "chat stream from a stream")
    assert stream_of(raw)[0] == text

    q = [{"role": "user", "content": prompt("Weather in Paris?")}]
    raw = create(model="gpt-4o-mini", messages=q, tools=CHAT_TOOLS, stream=True)
    expect(raw, "miss", "chat tool call stream")
    _, finish, _, calls = stream_of(raw)
    assert finish == "tool_calls" and calls[0]["name"] == "get_weather", calls
    stored()
    raw = create(model="gpt-4o-mini", messages=q, tools=CHAT_TOOLS)
    expect(raw, "hit", "chat tool call whole")
    call = raw.parse().choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == (calls[0]["id"], "get_weather"), call
    assert json.loads(call.function.arguments) == json.loads(calls[0]["arguments"])


def check_messages(base: str, key: str) -> None:
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)
    create = client.messages.with_raw_response.create

    def stream_of(**kw):
        with client.messages.stream(**kw) as s:
            outcome = s.response.headers.get("x-sluice-cache")
            text = "".join(s.text_stream)
            return outcome, text, s.get_final_message()

    q = [{"role": "user", "content": prompt("Tell me about rivers")}]
    raw = create(model="gpt-4o-mini", max_tokens=200, messages=q)
    expect(raw, "miss", "messages whole")
    whole = raw.parse()
    stored()
    outcome, text, final = stream_of(model="gpt-4o-mini", max_tokens=200, messages=q)
    assert outcome == "hit", f"messages stream from a whole answer: {outcome}"
    assert text == whole.content[0].text, (text, whole.content[0].text)
    assert final.stop_reason == whole.stop_reason, final.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens, final.usage

    q = [{"role": "user", "content": prompt("Tell me about lakes")}]
    outcome, text, final = stream_of(model="gpt-4o-mini", max_tokens=200, messages=q)
    assert outcome == "miss", f"messages stream: {outcome}"
    stored()
    raw = create(model="gpt-4o-mini", max_tokens=200, messages=q)
    expect(raw, "hit", "messages whole from a stream")
    whole = raw.parse()
    assert whole.content[0].text == text and whole.stop_reason == final.stop_reason, whole
    outcome, again, _ = stream_of(model="gpt-4o-mini", max_tokens=200, messages=q)
    assert (outcome, again) == ("hit", text), (outcome, again)

    q = [{"role": "user", "content": prompt("Weather in Paris?")}]
    outcome, _, final = stream_of(model="gpt-4o-mini", max_tokens=200, messages=q, tools=ANTHROPIC_TOOLS)
    assert outcome == "miss", outcome
    use = [b for b in final.content if b.type == "tool_use"][0]
    stored()
    raw = create(model="gpt-4o-mini", max_tokens=200, messages=q, tools=ANTHROPIC_TOOLS)
    expect(raw, "hit", "messages tool call whole")
    hit = [b for b in raw.parse().content if b.type == "tool_use"][0]
    assert (hit.id, hit.name, hit.input) == (use.id, use.name, use.input), (hit, use)
    assert raw.parse().stop_reason == "tool_use"


def check_responses(base: str, key: str) -> None:
    client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
    create = client.responses.with_raw_response.create

    def stream_of(**kw):
        with client.responses.stream(**kw) as s:
            text = ""
            for event in s:
                if event.type == "response.output_text.delta":
                    text += event.delta
            return text, s.get_final_response()

    q = prompt("Tell me about rivers")
    raw = create(model="gpt-4o-mini", input=q)
    expect(raw, "miss", "responses whole")
    whole = raw.parse()
    stored()
    raw = create(model="gpt-4o-mini", input=q, stream=True)
    expect(raw, "hit", "responses stream from a whole answer")
    text, completed = "", None
    for event in raw.parse():
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            completed = event.response
    assert text == whole.output_text, (text, whole.output_text)
    assert completed is not None and completed.output_text == text, completed
    assert completed.usage.output_tokens == whole.usage.output_tokens, completed.usage

    q = prompt("Tell me about lakes")
    text, final = stream_of(model="gpt-4o-mini", input=q)
    stored()
    raw = create(model="gpt-4o-mini", input=q)
    expect(raw, "hit", "responses whole from a stream")
    whole = raw.parse()
    assert whole.output_text == text == final.output_text, (whole.output_text, text)
    assert whole.status == "completed" and whole.usage.output_tokens > 0, whole

    q = prompt("Weather in Paris?")
    _, final = stream_of(model="gpt-4o-mini", input=q, tools=RESPONSES_TOOLS)
    call = [o for o in final.output if o.type == "function_call"][0]
    stored()
    raw = create(model="gpt-4o-mini", input=q, tools=RESPONSES_TOOLS)
    expect(raw, "hit", "responses tool call whole")
    hit = [o for o in raw.parse().output if o.type == "function_call"][0]
    assert (hit.call_id, hit.name) == (call.call_id, call.name), (hit, call)
    assert json.loads(hit.arguments) == json.loads(call.arguments)


CHECKS = {"chat": check_chat, "messages": check_messages, "responses": check_responses}


def main() -> None:
    global METRICS
    base, key, METRICS, apis = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    for api in apis:
        CHECKS[api](base, key)
        print(f"{api}: ok")
    print("all checks passed")


if __name__ == "__main__":
    main()
