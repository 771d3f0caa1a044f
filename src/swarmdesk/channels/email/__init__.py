"""The email channel: pure parsing (mime), reply stripping (quotes), outbound building (compose) and
Authentication-Results reading (auth). Nothing here touches the database or the network."""
