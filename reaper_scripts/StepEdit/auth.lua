-- @noindex
-- StepEdit auth: signed messages, as docs/protocol.md ("Authentication") defines them. A
-- packet is wrapped in /stepedit/auth key_id timestamp nonce tag packet, where tag is the
-- HMAC-SHA256 (keyed with the secret's text) of the fields and the packet (pure Lua).
--
--   sign(packet, key[, timestamp, nonce]) -> the datagram; key = {id=, secret=}
--   tag(secret, key_id, timestamp, nonce, packet) -> lowercase hex
--   new_nonce()                           -> 24 hex characters, new at every call

local import = ...
local codec = import("codec")
local hmac = import("hmac")

local M = {}

local CONTEXT = "stepedit-auth-v1"

local counter = 0

-- Lua 5.4 seeds math.random randomly for each Lua state; the counter keeps nonces of one
-- state distinct even if two draws collided.
function M.new_nonce()
  counter = counter + 1
  return string.format("%08x%08x%08x", math.random(0, 0xffffffff), math.random(0, 0xffffffff),
    counter & 0xffffffff)
end

function M.tag(secret, key_id, timestamp, nonce, packet)
  local text = table.concat({ CONTEXT, key_id, timestamp, nonce, packet }, "\n")
  return hmac.hex(hmac.hmac_sha256(secret, text))
end

-- Whole seconds: REAPER has no sub-second wall clock (time_precise counts from an arbitrary
-- origin on Windows), and the engine allows 60 s of skew. Each call signs anew (new nonce),
-- so a resent request is never refused as a replay.
function M.sign(packet, key, timestamp, nonce)
  timestamp = timestamp or string.format("%d", os.time())
  nonce = nonce or M.new_nonce()
  return codec.osc_encode(codec.ADDRESS.auth, key.id, timestamp, nonce,
    M.tag(key.secret, key.id, timestamp, nonce, packet), codec.osc_blob(packet))
end

return M
