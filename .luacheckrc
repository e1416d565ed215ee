-- luacheck configuration for the REAPER scripts and their tests (Lua 5.4, as in REAPER 7).
std = "lua54"
max_line_length = 100
include_files = { "reaper_scripts/**/*.lua", "tests/reaper/**/*.lua" }

self = false -- methods may ignore self

-- REAPER provides these to every script; scripts position gfx menus through gfx.x/gfx.y.
read_globals = {
  "reaper",
  gfx = { fields = { x = { read_only = false }, y = { read_only = false } }, other_fields = true },
}

files["tests/reaper/**/*.lua"] = { max_line_length = 120 }
files["tests/reaper/**/*_spec.lua"] = { std = "+busted", max_line_length = 120 }
-- The emulator defines the globals REAPER would provide.
files["tests/reaper/reaper_emulator.lua"] = { globals = { "reaper", "gfx" } }
files["tests/reaper/run_action.lua"] = { globals = { "reaper", "gfx" } }
