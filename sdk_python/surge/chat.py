"""``surge-chat``: a terminal chat on Surge that signs in, lists conversations and streams answers, with
the model's reasoning shown dimmed. Streams resume by themselves if the connection drops."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from surge._auth import FileTokenStore
from surge._client import Surge
from surge._events import ContentEvent, DegradedEvent, DoneEvent, ErrorEvent, QueuedEvent, ReasoningEvent
from surge._exceptions import APIError, AuthenticationError, ConflictError, SurgeError
from surge._streaming import MessageStream
from surge._types import Conversation

DEFAULT_SESSION_FILE = "~/.config/surge/session.json"
HELP = """Commands:
  /list           your recent conversations      /open N    continue conversation N of /list
  /new            start a new conversation       /retry     regenerate the last answer
  /logout         sign out and quit              /quit      quit (Ctrl-D too)
Ctrl-C while an answer streams stops it."""


class Style:
    """ANSI styling, or none when the output is not a terminal (or NO_COLOR is set)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    @property
    def start_dim(self) -> str:
        return "\x1b[2m" if self.enabled else ""

    @property
    def reset(self) -> str:
        return "\x1b[0m" if self.enabled else ""


class Chat:
    def __init__(
        self,
        client: Surge,
        *,
        out: TextIO,
        read_line: Callable[[str], str],
        read_password: Callable[[str], str],
        style: Style,
        model: str | None,
        thinking: bool | None,
    ) -> None:
        self.client = client
        self.out = out
        self.read_line = read_line
        self.read_password = read_password
        self.style = style
        self.model = model
        self.thinking = thinking
        self.conversation: Conversation | None = None
        self.listed: list[Conversation] = []
        self.last_answer_id: str | None = None

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def sign_in(self, email: str | None, *, sign_up: bool) -> None:
        if self.client.tokens.credentials is not None and not sign_up:
            try:
                user = self.client.me.get()
                self.say(self.style.dim(f"Signed in as {user.email or user.display_name or user.id}."))
                return
            except AuthenticationError:
                self.say(self.style.dim("Your session has ended; sign in again."))
        email = email or self.read_line("Email: ").strip()
        password = self.read_password("Password: ")
        if not sign_up:
            try:
                self.client.auth.log_in(email, password)
                self.say(self.style.dim(f"Signed in as {email}."))
                return
            except AuthenticationError:
                answer = self.read_line(
                    "Wrong password, or no account yet. Create one with this email? [y/N] "
                )
                if answer.strip().lower() not in ("y", "yes"):
                    raise
        try:
            self.client.auth.sign_up(email, password)
        except ConflictError:
            raise SurgeError(
                "That email already has an account, and the password is not its password."
            ) from None
        self.say(self.style.dim(f"Welcome! Account created for {email}."))

    def list_conversations(self) -> None:
        self.listed = self.client.conversations.list(limit=10).data
        if not self.listed:
            self.say(self.style.dim("No conversations yet: type a message to start one."))
            return
        for number, conversation in enumerate(self.listed, start=1):
            pin = "* " if conversation.pinned else ""
            self.say(f"{number:>3}. {pin}{conversation.title or self.style.dim('(untitled)')}")

    def open(self, conversation_id: str) -> None:
        detail = self.client.conversations.get(conversation_id)
        conversation = self.conversation = detail.conversation
        self.say(self.style.bold(f"— {conversation.title or 'untitled'} —"))
        for message in detail.messages[-6:]:
            who = "you" if message.role == "user" else "surge"
            self.say(f"{self.style.bold(who + '>')} {message.content}")
        assistant = [message for message in detail.messages if message.role == "assistant"]
        self.last_answer_id = assistant[-1].id if assistant else None

    def choose(self) -> None:
        self.list_conversations()
        if not self.listed:
            return
        choice = self.read_line("Open which one (Enter for a new conversation)? ").strip()
        if choice.isdigit() and 1 <= int(choice) <= len(self.listed):
            self.open(self.listed[int(choice) - 1].id)

    def ask(self, text: str) -> None:
        if self.conversation is None:
            self.conversation = self.client.conversations.create(model=self.model)
        stream = self.client.messages.stream(
            self.conversation.id, text, model=self.model, thinking=self.thinking
        )
        self.show(stream)

    def retry(self) -> None:
        if self.last_answer_id is None:
            self.say(self.style.dim("Nothing to regenerate yet."))
            return
        self.show(
            self.client.messages.stream_regenerate(
                self.last_answer_id, model=self.model, thinking=self.thinking
            )
        )

    def show(self, stream: MessageStream) -> None:
        mode = ""  # "", "reasoning" or "content": what is being printed
        with stream:
            try:
                for event in stream:
                    if isinstance(event, QueuedEvent):
                        self.say(
                            self.style.dim(
                                f"[waiting: position {event.position}, ~{event.estimated_wait_s:.0f}s]"
                            )
                        )
                    elif isinstance(event, DegradedEvent):
                        self.say(self.style.dim(f"[busy: {event.reason}]"))
                    elif isinstance(event, ReasoningEvent):
                        if mode != "reasoning":
                            self.say(self.style.start_dim + "thinking: ", end="")
                            mode = "reasoning"
                        self.say(event.delta, end="")
                    elif isinstance(event, ContentEvent):
                        if mode != "content":
                            self.say(
                                self.style.reset + ("\n" if mode else "") + self.style.bold("surge>") + " ",
                                end="",
                            )
                            mode = "content"
                        self.say(event.delta, end="")
                    elif isinstance(event, DoneEvent):
                        self.say(self.style.reset)
                        if event.message.status == "cancelled":
                            self.say(self.style.dim("[stopped]"))
                        self.last_answer_id = event.message.id
                    elif isinstance(event, ErrorEvent):
                        self.say(self.style.reset)
                        self.say(self.style.red(f"[the answer failed: {event.message}]"))
                        self.last_answer_id = stream.message_id
            except KeyboardInterrupt:
                self.say(self.style.reset)
                stream.cancel()
                stream.until_done()
                self.say(self.style.dim("[stopped]"))

    def run(self) -> int:
        self.say(self.style.dim("Type a message, or /help."))
        while True:
            try:
                line = self.read_line("you> ")
            except EOFError:
                self.say()
                return 0
            text = line.strip()
            if not text:
                continue
            try:
                if not self.command(text):
                    return 0
            except APIError as exc:
                self.say(self.style.red(f"[{exc}]"))

    def command(self, text: str) -> bool:
        """Handle one line; ``False`` to quit."""
        if not text.startswith("/"):
            self.ask(text)
        elif text == "/quit":
            return False
        elif text == "/help":
            self.say(HELP)
        elif text == "/list":
            self.list_conversations()
        elif text == "/new":
            self.conversation, self.last_answer_id = None, None
            self.say(self.style.dim("New conversation."))
        elif text.startswith("/open"):
            _, _, number = text.partition(" ")
            if not self.listed:
                self.listed = self.client.conversations.list(limit=10).data
            if number.strip().isdigit() and 1 <= int(number) <= len(self.listed):
                self.open(self.listed[int(number) - 1].id)
            else:
                self.say(self.style.dim("Which one? /list shows the numbers."))
        elif text == "/retry":
            self.retry()
        elif text == "/logout":
            self.client.auth.log_out()
            self.say(self.style.dim("Signed out."))
            return False
        else:
            self.say(self.style.dim("Unknown command; /help lists them."))
        return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="surge-chat", description="Chat with a Surge server in your terminal."
    )
    parser.add_argument(
        "--base-url", default=None, help="Surge's URL (default: $SURGE_BASE_URL or http://127.0.0.1:8000)"
    )
    parser.add_argument("--email", help="sign in with this email (asked for when needed)")
    parser.add_argument("--sign-up", action="store_true", help="create an account instead of signing in")
    parser.add_argument(
        "--session-file",
        default=os.environ.get("SURGE_SESSION_FILE", DEFAULT_SESSION_FILE),
        help=f"where the session is kept between runs (default: {DEFAULT_SESSION_FILE})",
    )
    parser.add_argument("--conversation", help="continue this conversation id")
    parser.add_argument("--new", action="store_true", help="start a new conversation right away")
    parser.add_argument("--model", help="the model of new conversations and answers")
    thinking = parser.add_mutually_exclusive_group()
    thinking.add_argument(
        "--thinking", dest="thinking", action="store_true", default=None, help="ask for reasoning"
    )
    thinking.add_argument("--no-thinking", dest="thinking", action="store_false", help="ask for no reasoning")
    color = parser.add_mutually_exclusive_group()
    color.add_argument("--color", dest="color", action="store_true", default=None, help="always use colours")
    color.add_argument("--no-color", dest="color", action="store_false", help="never use colours")
    return parser.parse_args(argv)


def main(
    argv: list[str] | None = None,
    *,
    client: Surge | None = None,
    out: TextIO | None = None,
    read_line: Callable[[str], str] = input,
    read_password: Callable[[str], str] = getpass.getpass,
) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    color = args.color if args.color is not None else out.isatty() and "NO_COLOR" not in os.environ
    if client is None:
        client = Surge(base_url=args.base_url, token_store=FileTokenStore(Path(args.session_file)))
    chat = Chat(
        client,
        out=out,
        read_line=read_line,
        read_password=read_password,
        style=Style(color),
        model=args.model,
        thinking=args.thinking,
    )
    try:
        with client:
            chat.sign_in(args.email, sign_up=args.sign_up)
            if args.conversation:
                chat.open(args.conversation)
            elif not args.new:
                chat.choose()
            return chat.run()
    except (EOFError, KeyboardInterrupt):
        chat.say()
        return 130
    except SurgeError as exc:
        chat.say(Style(color).red(str(exc)))
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
