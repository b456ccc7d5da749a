"""End-to-end checks of the Discord stand-in with a minimal real discord.py bot."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.http import Route
from standin import (
    CHANNEL_MESSAGE,
    FOLLOWUP,
    INTERACTION_CALLBACK,
    DiscordStandin,
    SpecValidator,
    eventually,
    payloads,
    running_bot,
)
from standin.fixtures import standin_fixture  # noqa: F401  (registers the `standin` fixture)

MESSAGES_ROUTE = "/channels/{channel_id}/messages"
CALLBACK_ROUTE = "/interactions/{interaction_id}/{interaction_token}/callback"


class VoteView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)
        self.votes = 0

    @discord.ui.button(label="Vote", custom_id="vote:up", style=discord.ButtonStyle.primary)
    async def vote(self, interaction: discord.Interaction, button: discord.ui.Button[VoteView]) -> None:
        self.votes += 1
        await interaction.response.edit_message(content=f"votes: {self.votes}", view=self)


class TinyBot(commands.Bot):
    """A minimal bot: one command of each kind the stand-in must carry."""

    def __init__(self, intents: discord.Intents | None = None) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents or discord.Intents.default(),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.seen_contents: list[str] = []

        admin = app_commands.Group(name="admin", description="Moderator tools")

        @admin.command(description="Describes a member")
        @app_commands.checks.has_permissions(manage_guild=True)
        async def whois(interaction: discord.Interaction, member: discord.Member) -> None:
            roles = ", ".join(r.name for r in member.roles[1:]) or "no roles"
            await interaction.response.send_message(f"{member.name}: {roles}", ephemeral=True)

        self.tree.add_command(admin)

        @self.tree.error
        async def on_app_command_error(
            interaction: discord.Interaction, error: app_commands.AppCommandError
        ) -> None:
            if isinstance(error, app_commands.MissingPermissions):
                await interaction.response.send_message("denied", ephemeral=True)
            else:
                raise error

        @self.tree.command(description="Replies with pong")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pong")

        @self.tree.command(description="Thinks, then answers")
        @app_commands.describe(question="What to ask")
        async def ask(interaction: discord.Interaction, question: str) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(f"answer: {question}")

        @self.tree.command(description="Posts a vote button")
        async def vote(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("votes: 0", view=VoteView())

        @self.tree.command(description="Reverses an uploaded file")
        async def reverse(interaction: discord.Interaction, file: discord.Attachment) -> None:
            data = await file.read()
            reply = discord.File(io.BytesIO(data[::-1]), filename=f"reversed-{file.filename}")
            await interaction.response.send_message(f"{len(data)} bytes", file=reply)

        @self.tree.context_menu(name="Quote")
        async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(f"> {message.content}", ephemeral=True)

        @self.command()
        async def hello(ctx: commands.Context[TinyBot]) -> None:
            await ctx.reply("hello there")

    async def on_message(self, message: discord.Message) -> None:
        self.seen_contents.append(message.content)
        await self.process_commands(message)


async def test_connects_and_fills_the_cache(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin) as bot:
        assert bot.user is not None and str(bot.user.id) == standin.bot_user["id"]
        assert bot.application_id == int(standin.application_id)
        guild = bot.get_guild(int(standin.guild["id"]))
        assert guild is not None and guild.name == "Stand-in Guild"
        assert [c.name for c in guild.text_channels] == ["general", "bot-log"]
        assert {r.name for r in guild.roles} == {"@everyone", "Moderator"}
        assert guild.me is not None and guild.me.id == bot.user.id
        assert guild.owner_id == int(standin.guild["owner_id"])
    assert standin.identifies == 1 and standin.resumes == 0
    assert standin.gateway_connections[0].query == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
    assert [(r.method, r.route) for r in standin.requests[:2]] == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
    ]


async def test_command_sync_passes_the_spec(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin) as bot:
        synced = await bot.tree.sync()
    put = await standin.wait_for_request(lambda r: r.method == "PUT")
    assert put.route == "/applications/{application_id}/commands" and put.status == 200
    assert {c["name"] for c in put.json} == {"admin", "ping", "ask", "vote", "reverse", "Quote"}
    assert {c.name: c.id for c in synced} == {c["name"]: int(c["id"]) for c in standin.registered_commands()}
    assert standin.violations == []


@pytest.mark.skipif(not SpecValidator().available, reason="Discord OpenAPI spec not present")
def test_validator_rejects_what_discord_rejects() -> None:
    validator = SpecValidator()
    commands_route = "/applications/1/commands"
    bad_command = [{"name": "x" * 33, "description": "d", "type": 1}]
    assert [p.location for p in validator.validate("PUT", commands_route, bad_command)] == [(0, "name")]
    embed = {"title": "t", "fields": [{"name": "n", "value": "v" * 1024}] * 6}
    problems = validator.validate("POST", "/channels/1/messages", {"embeds": [embed]}, route=MESSAGES_ROUTE)
    assert [p.code for p in problems] == ["MAX_EMBED_SIZE_EXCEEDED"]
    button = {"type": 2, "style": 1, "label": "x" * 81, "custom_id": "c"}
    callback = {"type": 4, "data": {"components": [{"type": 1, "components": [button]}]}}
    problems = validator.validate("POST", "/interactions/1/t/callback", callback, route=CALLBACK_ROUTE)
    assert [p.location for p in problems] == [("data", "components", 0, "components", 0, "label")]


def test_missing_spec_steps_aside_but_limits_still_apply(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="spec not found"):
        validator = SpecValidator(tmp_path / "openapi.json")
    assert not validator.available
    too_long = {"content": "x" * 2001}
    problems = validator.validate("POST", "/channels/1/messages", too_long, route=MESSAGES_ROUTE)
    assert [p.location for p in problems] == [("content",)]


async def test_protocol_violations_are_recorded(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin):
        event = standin.slash_interaction("ping")
        await standin.dispatch("INTERACTION_CREATE", event)
        await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
        # A click on a component no view listens to: discord.py ignores it, so it stays unanswered.
        message = standin.add_message(standin.message_create("no buttons here"))
        unanswered = standin.component_interaction("nobody-listens", message)
        auth = {"Authorization": "Bot standin-token"}
        async with aiohttp.ClientSession() as http:
            callback = f"{standin.api_base}/interactions/{event['id']}/{event['token']}/callback"
            async with http.post(callback, json={"type": 4, "data": {"content": "again"}}) as response:
                assert response.status == 400 and (await response.json())["code"] == 40060
            await standin.dispatch("INTERACTION_CREATE", unanswered, timeout=1)
            followup = f"{standin.api_base}/webhooks/{standin.application_id}/{unanswered['token']}"
            async with http.post(followup, json={"content": "too early"}) as response:
                assert response.status == 404 and (await response.json())["code"] == 10015
            channel = f"{standin.api_base}/channels/{standin.channel['id']}/messages"
            async with http.post(channel, json={"content": ""}, headers=auth) as response:
                assert response.status == 400 and (await response.json())["code"] == 50006
            async with http.get(f"{standin.api_base}/guilds/1/bans", headers=auth) as response:
                assert response.status == 404 and response.headers["Content-Type"] == "application/json"
    assert [v.kind for v in standin.violations] == ["protocol", "protocol", "empty_message"]
    with pytest.raises(AssertionError, match="route not served by the stand-in: GET /guilds/1/bans"):
        standin.assert_clean()
    standin.clear_violations()


async def test_slash_command_reply(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin) as bot:
        await bot.tree.sync()
        event = standin.slash_interaction("ping")
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    assert sent.kind == INTERACTION_CALLBACK and sent.callback_type == 4
    assert sent.content == "pong" and not sent.ephemeral
    assert sent.allowed_mentions == {"parse": []}
    assert sent.request.query == {"with_response": "1"}
    assert sent.message is not None and sent.message["interaction_metadata"]["id"] == event["id"]


async def test_dm_slash_command(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin):
        event = standin.slash_interaction("ping", in_dm=True)
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    assert "guild_id" not in event and event["user"]["username"] == "alice"
    assert sent.content == "pong" and sent.channel_id == event["channel"]["id"]


async def test_permission_check_reads_member_permissions(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin):
        mod = standin.find_member("mod")
        by_alice = standin.slash_interaction("admin", {"member": mod}, subcommand="whois")
        by_mod = standin.slash_interaction("admin", {"member": mod}, subcommand="whois", member=mod)
        for event in (by_alice, by_mod):
            await standin.dispatch("INTERACTION_CREATE", event)
        denied = await standin.wait_for_sent_message(lambda m: m.interaction_id == by_alice["id"])
        allowed = await standin.wait_for_sent_message(lambda m: m.interaction_id == by_mod["id"])
    assert denied.content == "denied" and denied.ephemeral
    assert allowed.content == "mod: Moderator"


async def test_deferred_reply_then_follow_up(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin):
        event = standin.slash_interaction("ask", {"question": "why?"})
        await standin.dispatch("INTERACTION_CREATE", event)
        followup = await standin.wait_for_sent_message(lambda m: m.kind == FOLLOWUP)
    callback = next(r for r in standin.requests if r.route == CALLBACK_ROUTE)
    assert callback.json == {"type": 5}
    assert followup.interaction_id == event["id"] and followup.content == "answer: why?"
    assert followup.request.query["wait"] == "1"
    # The first follow-up completes the "thinking" message instead of posting a new one.
    assert followup.message is not None and followup.message["flags"] & 128 == 0
    assert followup.message["id"] == callback.response["interaction"]["response_message_id"]


async def test_message_context_menu(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin):
        target = standin.message_create("quotable words", author=standin.find_member("mod"))
        standin.add_message(target)
        event = standin.message_context_interaction("Quote", target)
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    assert sent.content == "> quotable words" and sent.ephemeral


async def test_button_updates_its_message(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin):
        command = standin.slash_interaction("vote")
        await standin.dispatch("INTERACTION_CREATE", command)
        posted = await standin.wait_for_sent_message(lambda m: m.interaction_id == command["id"])
        assert posted.message is not None
        assert posted.components[0]["components"][0]["custom_id"] == "vote:up"
        click = standin.component_interaction("vote:up", posted.message)
        await standin.dispatch("INTERACTION_CREATE", click)
        update = await standin.wait_for_sent_message(lambda m: m.interaction_id == click["id"])
    assert update.callback_type == 7 and update.content == "votes: 1"
    assert standin.messages[posted.message["id"]]["content"] == "votes: 1"


async def test_attachment_download_and_upload(standin: DiscordStandin) -> None:
    attachment = standin.add_attachment("note.txt", b"hello file", "text/plain")
    async with running_bot(TinyBot(), standin):
        event = standin.slash_interaction("reverse", {"file": attachment})
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    assert standin.downloads == [attachment["url"].removeprefix(standin.base_url)]
    assert sent.content == "10 bytes"
    assert [(f.filename, f.data) for f in sent.files] == [("reversed-note.txt", b"elif olleh")]
    assert sent.message is not None and sent.message["attachments"][0]["filename"] == "reversed-note.txt"


async def test_mention_gets_a_reply_and_other_messages_have_no_content(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin) as bot:
        plain = standin.message_create("not for the bot")
        await standin.dispatch("MESSAGE_CREATE", plain)
        event = standin.message_create(f"{payloads.mention(standin.bot_user)} hello")
        await standin.dispatch("MESSAGE_CREATE", event)
        reply = await standin.wait_for_sent_message(lambda m: m.kind == CHANNEL_MESSAGE)
    # Without the message_content intent Discord blanks messages that do not mention the bot.
    assert bot.seen_contents == ["", event["content"]]
    assert reply.content == "hello there" and reply.channel_id == standin.channel["id"]
    assert reply.message_reference is not None
    assert str(reply.message_reference["message_id"]) == event["id"]
    assert reply.allowed_mentions == {"parse": []}  # AllowedMentions.none(): the reply pings nobody
    assert reply.message is not None and reply.message["referenced_message"]["id"] == event["id"]


async def test_rate_limits_are_retried_and_deliver_once(standin: DiscordStandin) -> None:
    def is_message_post(r: object) -> bool:
        return getattr(r, "method", "") == "POST" and getattr(r, "route", "") == MESSAGES_ROUTE

    async with running_bot(TinyBot(), standin) as bot:
        channel = bot.get_channel(int(standin.channel["id"]))
        assert isinstance(channel, discord.TextChannel)
        standin.rate_limit_next(1, predicate=is_message_post)
        await channel.send("first")
        assert [r.status for r in standin.requests if is_message_post(r)] == [429, 200]

        standin.rate_limit_next(1, predicate=lambda r: r.route == CALLBACK_ROUTE)
        event = standin.slash_interaction("ping")
        await standin.dispatch("INTERACTION_CREATE", event)
        await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])

        standin.rate_limit_fraction = 0.3
        for i in range(8):
            await channel.send(f"burst {i}")
        standin.rate_limit_fraction = 0.0
    posted = [m.content for m in standin.sent_messages(CHANNEL_MESSAGE)]
    assert posted == ["first"] + [f"burst {i}" for i in range(8)]
    assert [r.status for r in standin.requests if r.route == CALLBACK_ROUTE] == [429, 200]
    assert sum(r.status == 429 for r in standin.requests) > 2  # the random ones happened too


async def test_enforce_nonce_returns_the_earlier_message_and_creates_nothing(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin) as bot:
        channel = bot.get_channel(int(standin.channel["id"]))
        assert isinstance(channel, discord.TextChannel)
        first = await channel.send("once", nonce="trigger-1")
        again = await channel.send("twice", nonce="trigger-1")  # same nonce: Discord's answer is `first`
        other = await channel.send("other", nonce="trigger-2")
    posts = [r for r in standin.requests if r.route == MESSAGES_ROUTE and r.method == "POST"]
    assert [(r.json["nonce"], r.json["enforce_nonce"]) for r in posts] == [
        ("trigger-1", True),
        ("trigger-1", True),
        ("trigger-2", True),
    ]
    assert again.id == first.id and again.content == "once" and other.id != first.id
    assert [m.content for m in standin.sent_messages(CHANNEL_MESSAGE)] == ["once", "other"]
    by_bot = [m["content"] for m in standin.messages.values() if m["author"]["id"] == standin.bot_user["id"]]
    assert by_bot == ["once", "other"]


class ShardBot(commands.AutoShardedBot):
    """One process's share of a sharded bot: records the guilds whose messages it receives."""

    def __init__(self, shard_ids: list[int], shard_count: int) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            allowed_mentions=discord.AllowedMentions.none(),
            shard_ids=shard_ids,
            shard_count=shard_count,
        )
        self.seen_guilds: list[int] = []

    async def on_message(self, message: discord.Message) -> None:
        if message.guild is not None:
            self.seen_guilds.append(message.guild.id)


def sharded_world() -> tuple[DiscordStandin, list[payloads.Payload]]:
    """A stand-in with two guilds on shard 0 and one on shard 1 (of two)."""
    owner = payloads.user("owner")
    guilds = [
        payloads.guild(
            f"guild {n} on shard {shard}",
            id=payloads.snowflake_on_shard(shard, 2),
            owner_id=owner["id"],
            channels=[payloads.text_channel("general")],
            members=[payloads.member(owner)],
        )
        for n, shard in enumerate((0, 1, 0))
    ]
    return DiscordStandin(guilds=guilds), guilds


async def test_sharded_identify_gets_only_its_guilds_and_their_events() -> None:
    standin, guilds = sharded_world()
    async with standin:
        async with (
            running_bot(ShardBot([0], 2), standin) as first,
            running_bot(ShardBot([1], 2), standin) as second,
        ):
            assert sorted(g.id for g in first.guilds) == sorted(int(guilds[i]["id"]) for i in (0, 2))
            assert [g.id for g in second.guilds] == [int(guilds[1]["id"])]
            assert standin.shard_connected(0) and standin.shard_connected(1)
            for guild in guilds:
                channel = guild["channels"][0]
                owner = guild["members"][0]
                await standin.dispatch(
                    "MESSAGE_CREATE", standin.message_create("hi", channel=channel, author=owner)
                )
            await eventually(lambda: len(first.seen_guilds) + len(second.seen_guilds) == 3)
        identified = [m["d"]["shard"] for m in standin.gateway_received if m["op"] == 2]
    assert sorted(identified) == [[0, 2], [1, 2]]
    assert first.seen_guilds == [int(guilds[0]["id"]), int(guilds[2]["id"])]
    assert second.seen_guilds == [int(guilds[1]["id"])]
    standin.assert_clean()


async def test_controls_act_on_the_shard_named_not_the_latest_session() -> None:
    """Each shard's process gets its own faults: op 9 on shard 0 (identified first, so not the
    latest session) makes shard 0 identify again while shard 1 stays; a drop on shard 1 resumes it."""
    standin, guilds = sharded_world()
    async with standin:
        async with running_bot(ShardBot([0], 2), standin), running_bot(ShardBot([1], 2), standin) as second:
            assert standin.shards == [0, 1]
            connections = len(standin.gateway_connections)
            await standin.invalidate_session(resumable=False, shard=0, timeout=15)
            assert (standin.identifies, standin.resumes) == (3, 0)
            assert standin.shard_connected(0) and standin.shard_connected(1)
            await standin.drop_connection(shard=1)
            await standin.force_reconnect(shard=0)
            await standin.wait_until_connected(shard=1)
            assert (standin.identifies, standin.resumes) == (3, 2)
            assert len(standin.gateway_connections) == connections + 3  # each its own shard's
            channel, owner = guilds[1]["channels"][0], guilds[1]["members"][0]
            await standin.dispatch(
                "MESSAGE_CREATE", standin.message_create("hi", channel=channel, author=owner)
            )
            await eventually(lambda: second.seen_guilds == [int(guilds[1]["id"])])
        identified = [m["d"]["shard"] for m in standin.gateway_received if m["op"] == 2]
        resumed = [m["d"]["session_id"] for m in standin.gateway_received if m["op"] == 6]
    assert identified[2:] == [[0, 2]]  # only shard 0 identified again
    assert len(set(resumed)) == 2  # shard 1's session and shard 0's new one
    standin.assert_clean()


async def test_an_impossible_shard_is_closed_with_4010() -> None:
    standin, _ = sharded_world()
    async with standin:
        with pytest.raises(discord.ConnectionClosed) as closed:
            async with running_bot(ShardBot([2], 2), standin):
                pass
    assert closed.value.code == 4010 and standin.identifies == 1


async def test_reconnect_resumes_and_replays_missed_events(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin) as bot:
        await standin.force_reconnect()
        assert (standin.identifies, standin.resumes) == (1, 1)
        assert standin.gateway_connections[-1].path == "/gateway-resume"

        # An event sent while the client is reconnecting is replayed on RESUME.
        await standin.force_reconnect(wait=False)
        await standin.dispatch("MESSAGE_CREATE", standin.message_create("during the reconnect"))
        await standin.wait_until_connected()
        await standin.drop_connection()
        assert (standin.identifies, standin.resumes) == (1, 3)

        event = standin.slash_interaction("ping")
        await standin.dispatch("INTERACTION_CREATE", event)
        await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    assert bot.seen_contents == [""]  # the replayed message (blank: it does not mention the bot)


async def test_invalidated_session_identifies_again(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin):
        await standin.invalidate_session(resumable=False)
        assert (standin.identifies, standin.resumes) == (2, 0)
        event = standin.slash_interaction("ping")
        await standin.dispatch("INTERACTION_CREATE", event)
        sent = await standin.wait_for_sent_message(lambda m: m.interaction_id == event["id"])
    assert sent.content == "pong"


async def test_too_long_message_is_a_violation(standin: DiscordStandin) -> None:
    async with running_bot(TinyBot(), standin) as bot:
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=standin.channel["id"])
        with pytest.raises(discord.HTTPException) as caught:
            await bot.http.request(route, json={"content": "x" * 2001})
    assert caught.value.status == 400 and caught.value.code == 50035
    assert len(standin.violations) == 1
    assert "content: Must be 2000 or fewer in length." in str(standin.violations[0])
    standin.clear_violations()


async def test_zlib_stream_gateway() -> None:
    async with DiscordStandin(gateway_compression=True) as server:
        async with running_bot(TinyBot(), server) as bot:
            assert bot.get_guild(int(server.guild["id"])) is not None
        server.assert_clean()


async def test_members_and_message_content_intents(standin: DiscordStandin) -> None:
    intents = discord.Intents.default()
    intents.members = intents.message_content = True
    async with running_bot(TinyBot(intents), standin) as bot:
        guild = bot.get_guild(int(standin.guild["id"]))
        assert guild is not None and guild.chunked and len(guild.members) == 4
        assert len(await guild.chunk()) == 4  # REQUEST_GUILD_MEMBERS -> GUILD_MEMBERS_CHUNK
        await standin.dispatch("MESSAGE_CREATE", standin.message_create("visible to this bot"))
        await eventually(lambda: bot.seen_contents == ["visible to this bot"])
    member_requests = [m for m in standin.gateway_received if m["op"] == 8]
    assert len(member_requests) == 1 and member_requests[0]["d"]["guild_id"] == int(standin.guild["id"])
