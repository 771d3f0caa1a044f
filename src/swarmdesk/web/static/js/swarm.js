// The swarm room on the conversation view (the swarming domain fills this in).
export {};
