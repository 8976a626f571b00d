"""The official `anthropic` SDK against `executus-run serve` (the gateway), driven by
gateway/tests/it/sdk.rs. Every case prints `ok NAME`; the first failure raises (exit 1).

    GW=http://127.0.0.1:PORT KEY=... MODE=mock|llama python anthropic_client.py

This SDK version authenticates with `authorization: Bearer` (the gateway also takes
`x-api-key`, which Claude Code sends).
"""

import os

import anthropic
import pydantic
import typing

GW = os.environ["GW"]
KEY = os.environ["KEY"]
MODE = os.environ["MODE"]


def client(key=KEY):
    return anthropic.Anthropic(base_url=GW, api_key=key, max_retries=0, timeout=120)


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


class City(pydantic.BaseModel):
    city: str
    population: int


WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

FORECAST = {
    "name": "get_forecast",
    "description": "Weather forecast for the next days",
    "input_schema": {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["unit", "days"],
        "additionalProperties": False,
    },
}


def expect(exc, status, fn):
    try:
        fn()
    except exc as e:
        assert e.status_code == status, (exc.__name__, e.status_code, status)
        return e
    raise AssertionError(f"expected {exc.__name__} ({status})")


def ask(model, key=KEY, **kw):
    return client(key).messages.create(
        model=model, max_tokens=kw.pop("max_tokens", 100), messages=kw.pop("messages", [{"role": "user", "content": "x"}]), **kw
    )


if MODE == "mock":

    @case
    def plain():
        r = ask("mock/m", messages=[{"role": "user", "content": "hi"}])
        assert r.content[0].text == "Hello from the mock.", r
        assert r.stop_reason == "end_turn"
        assert r.usage.output_tokens == 5

    @case
    def streamed():
        with client().messages.stream(model="mock/m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text == "Hello from the mock.", text
        assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5, final

    @case
    def tool_round_trip():
        messages = [{"role": "user", "content": "weather in Paris?"}]
        r = ask("mock/m", messages=messages, tools=[WEATHER])
        assert r.stop_reason == "tool_use", r
        use = [b for b in r.content if b.type == "tool_use"][0]
        assert use.name == "get_weather" and use.input == {"city": "Paris"}
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]})
        r = ask("mock/m", messages=messages, tools=[WEATHER])
        assert r.content[0].text == "The weather in Paris is sunny.", r

    @case
    def tool_round_trip_streamed():
        with client().messages.stream(
            model="mock/m", max_tokens=100, messages=[{"role": "user", "content": "weather in Paris?"}], tools=[WEATHER]
        ) as s:
            final = s.get_final_message()
        use = [b for b in final.content if b.type == "tool_use"][0]
        assert use.input == {"city": "Paris"}, final

    @case
    def typed_output():
        r = client().messages.parse(
            model="mock/m", max_tokens=100, messages=[{"role": "user", "content": "a city"}], output_format=City
        )
        assert r.parsed_output == City(city="Paris", population=2100000), r

    @case
    def error_400_bad_request():
        expect(anthropic.BadRequestError, 400, lambda: ask("mock/m", messages=[{"role": "wizard", "content": "x"}]))

    @case
    def error_401_authentication():
        expect(anthropic.AuthenticationError, 401, lambda: ask("mock/m", key="sk-wrong"))

    @case
    def error_403_permission():
        expect(anthropic.PermissionDeniedError, 403, lambda: ask("busy/m", key=os.environ["LIMITED_KEY"]))

    @case
    def error_404_not_found():
        expect(anthropic.NotFoundError, 404, lambda: ask("nope"))

    @case
    def error_413_too_large():
        expect(
            anthropic.RequestTooLargeError,
            413,
            lambda: ask("mock/m", messages=[{"role": "user", "content": "x" * (33 << 20)}]),
        )

    @case
    def error_429_rate_limit():
        ask("mock/m", key=os.environ["SLOW_KEY"])
        e = expect(anthropic.RateLimitError, 429, lambda: ask("mock/m", key=os.environ["SLOW_KEY"]))
        assert int(e.response.headers["retry-after"]) >= 1

    @case
    def error_500_internal():
        expect(anthropic.InternalServerError, 500, lambda: ask("mock/m", extra_headers={"x-executus-session": "boom"}))

    @case
    def error_502_bad_gateway():
        expect(anthropic.InternalServerError, 502, lambda: ask("garbage/m"))

    @case
    def error_503_unavailable():
        expect(anthropic.ServiceUnavailableError, 503, lambda: ask("down/m"))

    @case
    def error_529_overloaded():
        expect(anthropic.OverloadedError, 529, lambda: ask("busy/m"))

else:

    @case
    def plain_anthropic_endpoint():
        r = ask("llama-messages/tiny", max_tokens=24, messages=[{"role": "user", "content": "Say hello."}])
        assert r.stop_reason in ("end_turn", "max_tokens"), r
        assert r.usage.output_tokens > 0

    @case
    def streamed_anthropic_endpoint():
        with client().messages.stream(
            model="llama-messages/tiny", max_tokens=24, messages=[{"role": "user", "content": "Say hello."}]
        ) as s:
            pieces = list(s.text_stream)
            final = s.get_final_message()
        # The random model may stop at once: the stream's shape is what is checked.
        assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0, final
        assert "".join(pieces) == "".join(b.text for b in final.content if b.type == "text")

    def forced_tool_call():
        # The random model's forced call now and then fails llama.cpp's own parser (a 500
        # from the server, a 503 here); a few attempts make the case about the gateway.
        for attempt in range(4):
            try:
                return ask(
                    "llama/tiny",
                    max_tokens=512,
                    messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
                    tools=[FORECAST],
                    tool_choice={"type": "any"},
                    extra_body={"logit_bias": {"90": 50}},
                )
            except anthropic.ServiceUnavailableError as e:
                if "does not match the expected" not in str(e) or attempt == 3:
                    raise

    @case
    def tool_call_through_the_openai_endpoint():
        r = forced_tool_call()
        assert r.stop_reason == "tool_use", r
        use = [b for b in r.content if b.type == "tool_use"][0]
        assert use.name == "get_forecast" and 1 <= use.input["days"] <= 7, use
        messages = [
            {"role": "user", "content": "What is the weather in Oslo?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ]
        r = ask("llama/tiny", max_tokens=24, messages=messages, tools=[FORECAST])
        assert r.stop_reason in ("end_turn", "max_tokens"), r

    @case
    def typed_output_through_the_openai_endpoint():
        # Closed values only: a free string or number lets the random model write until the
        # cap (and the anthropic SDK leaves numeric bounds out of the schema it sends).
        class Sky(pydantic.BaseModel):
            sky: typing.Literal["sunny", "cloudy", "rainy"]
            windy: bool

        r = client().messages.parse(
            model="llama/tiny", max_tokens=512, messages=[{"role": "user", "content": "Forecast?"}], output_format=Sky
        )
        assert isinstance(r.parsed_output, Sky), r

    @case
    def streamed_through_the_openai_endpoint():
        with client().messages.stream(
            model="llama/tiny", max_tokens=24, messages=[{"role": "user", "content": "Say hello."}]
        ) as s:
            final = s.get_final_message()
        assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0, final


for fn in CASES:
    fn()
    print("ok", fn.__name__, flush=True)
print("all", len(CASES), flush=True)
