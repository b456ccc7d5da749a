"""/article and /help: what the bot knows and how to ask it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from .. import replies
from ..client import respond

if TYPE_CHECKING:
    from ..client import ArticleBot

HELP = """\
**articlebot** answers questions about the article by quoting its passages, with where each one \
sits in the article. When the article doesn't say, it tells you so instead of guessing.

**Ask** with `/ask`, by mentioning me (“@{name} who called Musk a rocket man?”), or from a \
message's **Apps** menu → *Ask the article*.
**Answers** show the best sentence first, then the passages it comes from, with your words in \
bold. *More* shows the next passages; 👍 / 👎 tell the moderators which passages help.
**Follow up** by replying to an answer (“and what did he reply?”) or with its *Follow up* button.
**Moderators** steer it with `/admin` (settings, channels, documents, insights, misses, feedback).
`/article` shows what the article covers."""


class Meta(commands.Cog):
    def __init__(self, bot: ArticleBot) -> None:
        self.bot = bot

    @app_commands.command(name="article", description="What the article is, and what it covers")
    async def article(self, interaction: discord.Interaction[ArticleBot]) -> None:
        engine = await self.bot.library.for_guild(interaction.guild_id)
        lines = []
        for doc in engine.documents:
            count = sum(1 for p in engine.passages if p.document_id == doc.id)
            head = f"**{replies.escape(doc.title)}**" + (
                f" — {replies.escape(doc.source)}" if doc.source else ""
            )
            lines.append(head)
            if doc.sections:
                lines.append("Sections: " + ", ".join(replies.escape(s) for s in doc.sections))
            lines.append(f"{count} passages\n")
        text = replies.truncate("\n".join(lines).strip(), replies.EMBED_DESCRIPTION_LIMIT)
        if interaction.app_permissions.embed_links:
            embed = discord.Embed(
                title="What I can answer from", description=text, colour=replies.COLOUR_ANSWER
            )
            await respond(interaction, ephemeral=True, embed=embed)
        else:
            await respond(interaction, ephemeral=True, content=replies.truncate(text, replies.CONTENT_LIMIT))

    @app_commands.command(name="help", description="What the bot does and how to ask it")
    async def help(self, interaction: discord.Interaction[ArticleBot]) -> None:
        name = self.bot.user.display_name if self.bot.user else "articlebot"
        await respond(interaction, ephemeral=True, content=HELP.format(name=name))


async def setup(bot: ArticleBot) -> None:
    await bot.add_cog(Meta(bot))
