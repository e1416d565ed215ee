-- item_slice: which part of which file an item plays (trim, playrate, sections), and refusals.
local H = dofile("tests/reaper/helpers.lua")

describe("item_slice", function()
  local emu, lib, wav

  before_each(function()
    emu = H.project()
    lib = H.lib()
    wav = H.write_wav(emu.dir .. "/Media/voice.wav", 4)
  end)

  after_each(function() H.rmdir(emu.dir) end)

  local function close(expected, actual)
    assert.is_true(math.abs(expected - actual) < 1e-9,
      string.format("expected %.9f, got %.9f", expected, actual))
  end

  it("sends the whole file for an untrimmed item", function()
    local slice = lib.item_slice(emu:add_item(emu.track, { file = wav }))
    assert.are.equal(wav, slice.input)
    close(0, slice.start)
    close(4, slice.length)
  end)

  it("sends only what a trimmed item plays (start offset, item length)", function()
    local slice = lib.item_slice(emu:add_item(emu.track,
      { file = wav, position = 10, startoffs = 1.25, length = 1.5 }))
    close(1.25, slice.start)
    close(1.5, slice.length)
    close(10, slice.position)
  end)

  it("scales the item length by the playrate", function()
    local slice = lib.item_slice(emu:add_item(emu.track,
      { file = wav, startoffs = 0.5, length = 1, playrate = 2 }))
    close(0.5, slice.start)
    close(2, slice.length)
    close(2, slice.playrate)
  end)

  it("adds the offsets of SECTION wrappers on the way to the file", function()
    local root = assert(emu:wave_source(wav))
    local section = emu:section_source(emu:section_source(root, 0.5, 3), 0.25, 2)
    local slice = lib.item_slice(emu:add_item(emu.track,
      { source = section, startoffs = 0.5, length = 1 }))
    assert.are.equal(wav, slice.input)
    close(1.25, slice.start)
    close(1, slice.length)
  end)

  it("clamps an item extended past the end of its file", function()
    local slice = lib.item_slice(emu:add_item(emu.track, { file = wav, startoffs = 3, length = 5 }))
    close(3, slice.start)
    close(1, slice.length)
  end)

  it("clamps an item that starts before its file and remembers the lead-in", function()
    local slice = lib.item_slice(emu:add_item(emu.track,
      { file = wav, startoffs = -0.5, length = 2 }))
    close(0, slice.start)
    close(1.5, slice.length)
    close(0.5, slice.lead_in)
  end)

  local refusals = {
    { "a reversed take", function()
        local root = assert(emu:wave_source(wav))
        return { source = emu:section_source(root, 0, 4, true) }
      end, "reversed" },
    { "a MIDI take", function() return { source = emu:midi_source(4) } end, "MIDI" },
    { "stretch markers", function() return { file = wav, stretch_markers = 2 } end, "stretch markers" },
    { "a missing file", function()
        local source = assert(emu:wave_source(wav))
        source.file = emu.dir .. "/gone.wav"
        return { source = source }
      end, "missing" },
    { "a slice outside the file", function() return { file = wav, startoffs = 5, length = 1 } end,
      "none of its source" },
  }
  for _, case in ipairs(refusals) do
    it("refuses " .. case[1] .. " with a reason", function()
      local slice, reason = lib.item_slice(emu:add_item(emu.track, case[2]()))
      assert.is_nil(slice)
      assert.matches(case[3], reason, 1, true)
    end)
  end

  it("refuses an empty item", function()
    local item = emu:add_item(emu.track, { file = wav })
    item.takes = {}
    local slice, reason = lib.item_slice(item)
    assert.is_nil(slice)
    assert.matches("empty", reason)
  end)
end)

describe("take names", function()
  local lib = H.lib()
  it("reads like the edit, with the number of passes", function()
    assert.are.equal("StepEdit happy \u{D7}2", lib.take_name({ type = "emotion", option = "happy" }, 2))
    assert.are.equal("StepEdit faster", lib.take_name({ type = "speed", option = "faster", iterations = 1 }))
    assert.are.equal("StepEdit remove silences", lib.take_name({ type = "vad" }, 1))
    assert.are.equal("StepEdit style remove", lib.take_name({ type = "style", option = "remove" }, 1))
  end)
end)
