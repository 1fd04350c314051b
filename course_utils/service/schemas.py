"""Request models of the local service: what a fine-tuning job or a chat completion may ask for,
checked field by field at the door so a bad value is a 400 naming its parameter, never a job
that fails later with an internal message. Unknown fields are refused, as OpenAI refuses them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from course_utils.service.training import MAX_BATCH, MAX_EPOCHS


class Strict(BaseModel):
    """A request object that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")


def _auto_or_int(low: int, high: int):
    def check(value: Any) -> Any:
        if value is None or value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PydanticCustomError("invalid_value", "must be 'auto' or an integer from {low} to {high}",
                                      {"low": low, "high": high})
        return value
    return check


def _auto_or_multiplier(value: Any) -> Any:
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10:
        raise PydanticCustomError("invalid_value", "must be 'auto' or a number above 0 and at most 10")
    return value


class Hyperparameters(Strict):
    """Supervised hyperparameters with OpenAI's ranges; n_epochs is capped so that no job can
    hold a training thread for days."""

    batch_size: Annotated[Any, AfterValidator(_auto_or_int(1, MAX_BATCH))] = "auto"
    learning_rate_multiplier: Annotated[Any, AfterValidator(_auto_or_multiplier)] = "auto"
    n_epochs: Annotated[Any, AfterValidator(_auto_or_int(1, MAX_EPOCHS))] = "auto"


class DpoHyperparameters(Hyperparameters):
    """DPO's hyperparameters: the supervised ones plus beta, the strength of the pull toward the
    reference model (OpenAI's DpoHyperparameters)."""

    beta: Annotated[Any, AfterValidator(_auto_or_multiplier)] = "auto"


class Supervised(Strict):
    hyperparameters: Hyperparameters | None = None


class Dpo(Strict):
    hyperparameters: DpoHyperparameters | None = None


class Method(Strict):
    """OpenAI's `method`: its type, and at most the settings block of that type."""

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Supervised | None = None
    dpo: Dpo | None = None
    reinforcement: dict[str, Any] | None = None

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters set in the block of this method's type (none set: {})."""
        block = getattr(self, self.type)
        hp = block.hyperparameters if isinstance(block, (Supervised, Dpo)) else None
        return hp.model_dump(exclude_unset=True) if hp is not None else {}

    def stray_block(self) -> str | None:
        """The name of a settings block given for another type than `type`, if any."""
        return next((k for k in ("supervised", "dpo", "reinforcement") if k != self.type and getattr(self, k)), None)


Key = Annotated[str, StringConstraints(max_length=64)]
Value = Annotated[str, StringConstraints(max_length=512)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=80)]


class JobRequest(Strict):
    """`POST /v1/fine_tuning/jobs`."""

    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    training_file: Id
    validation_file: Id | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: Annotated[dict[Key, Value], Field(max_length=16)] | None = None
    integrations: Annotated[list[Any], Field(max_length=0)] | None = None


class TextPart(Strict):
    type: Literal["text"]
    text: str


class Message(Strict):
    """A chat message: the roles a chat model answers, text content (a string or text parts)."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None
    # what a client sends back when it replays an earlier reply; all must be empty here
    refusal: None = None
    tool_calls: None = None
    function_call: None = None
    audio: None = None
    annotations: None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


def _only_one(value: int | None) -> int | None:
    if value is not None and value != 1:
        raise PydanticCustomError("invalid_value", "only n=1 is supported by this local service")
    return value


class StreamOptions(Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatRequest(Strict):
    """`POST /v1/chat/completions`: the options the local models honour."""

    model: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    messages: Annotated[list[Message], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    n: Annotated[int | None, AfterValidator(_only_one)] = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[Key, Value] | None = None
    store: bool | None = None

    def stops(self) -> list[str]:
        return [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop or []) if s]
