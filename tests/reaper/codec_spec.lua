-- OSC and JSON codecs (reaper_scripts/StepEdit/codec.lua, through the library) on raw bytes and exact strings.
local H = dofile("tests/reaper/helpers.lua")
local lib = H.lib()

local function hex(bytes)
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

describe("runs under the Lua of REAPER 7", function()
  it("is Lua 5.4 (busted --lua=lua5.4)", function()
    assert.are.equal("Lua 5.4", _VERSION)
  end)
end)

describe("OSC encoder", function()
  it("pads the address and type tags to 4 bytes, always with at least one NUL", function()
    assert.are.equal("/abc\0\0\0\0,\0\0\0", lib.osc_encode("/abc"))
    assert.are.equal("/ab\0,\0\0\0", lib.osc_encode("/ab"))
  end)

  it("encodes int32 big-endian", function()
    assert.are.equal(hex("/stepedit/ping\0\0,i\0\0") .. "000024be",
      hex(lib.osc_encode("/stepedit/ping", 9406)))
    assert.are.equal("ffffffff", hex(lib.osc_encode("/x", -1)):sub(-8))
  end)

  it("encodes float32 big-endian, also for integral values via osc_float", function()
    assert.are.equal("3f000000", hex(lib.osc_encode("/x", 0.5)):sub(-8))
    assert.are.equal(",f\0\0" .. "\63\128\0\0", lib.osc_encode("/x", lib.osc_float(1)):sub(5))
  end)

  it("encodes strings NUL-terminated and padded, UTF-8 unchanged", function()
    local bytes = lib.osc_encode("/stepedit/edit", "job-1", "é")
    assert.are.equal("/stepedit/edit\0\0,ss\0job-1\0\0\0\195\169\0\0", bytes)
    assert.are.equal(0, #bytes % 4)
  end)

  it("refuses what OSC v1 here cannot carry", function()
    assert.has_error(function() lib.osc_encode("/x", 1 << 40) end)
    assert.has_error(function() lib.osc_encode("/x", true) end)
    assert.has_error(function() lib.osc_encode("/x", "a\0b") end)
  end)
end)

describe("OSC decoder", function()
  it("decodes messages with i, f, s", function()
    local bytes = "/stepedit/progress\0\0,sfs\0\0\0\0job-1\0\0\0\63\64\0\0render\0\0"
    local m = lib.osc_decode(bytes)
    assert.are.same({ { address = "/stepedit/progress", args = { "job-1", 0.75, "render" } } }, m)
  end)

  it("round-trips through the encoder", function()
    local bytes = lib.osc_encode("/stepedit/error", "id", "bad_slice", "start/length ✓", 7, 0.25)
    assert.are.same({ "id", "bad_slice", "start/length ✓", 7, 0.25 }, lib.osc_decode(bytes)[1].args)
  end)

  it("unpacks nested bundles in order", function()
    local a, b = lib.osc_encode("/a", 1), lib.osc_encode("/b", "x")
    local inner = "#bundle\0" .. string.rep("\0", 7) .. "\1" .. string.pack(">i4", #b) .. b
    local outer = "#bundle\0" .. string.rep("\0", 7) .. "\1" .. string.pack(">i4", #a) .. a
      .. string.pack(">i4", #inner) .. inner
    local messages = lib.osc_decode(outer)
    assert.are.same({ "/a", "/b" }, { messages[1].address, messages[2].address })
    assert.are.same({ "x" }, messages[2].args)
  end)

  it("accepts blobs, int64, double, T/F/N", function()
    local bytes = "/t\0\0,bhdTFN\0" .. string.pack(">i4", 3) .. "abc\0"
      .. string.pack(">i8", 5) .. string.pack(">d", 0.1)
    local args = lib.osc_decode(bytes)[1].args
    assert.are.same({ "abc", 5, 0.1, true, false }, { args[1], args[2], args[3], args[4], args[5] })
    assert.are.equal(lib.json_null, args[6])
  end)

  for name, bytes in pairs({
    ["not a multiple of 4"] = "/ab\0,i\0\0\0\0\0",
    ["truncated int"] = "/ab\0,i\0\0\0\0",
    ["no leading slash"] = "ab\0\0,\0\0\0",
    ["no comma"] = "/ab\0i\0\0\0\0\0\0\1",
    ["unterminated string"] = "/abc",
    ["bad padding"] = "/a\0x,\0\0\0",
    ["unknown tag"] = "/ab\0,q\0\0",
    ["trailing bytes"] = "/ab\0,\0\0\0\0\0\0\0",
    ["bundle element too long"] = "#bundle\0" .. string.rep("\0", 8) .. string.pack(">i4", 64)
      .. "/a\0\0",
  }) do
    it("rejects a malformed packet: " .. name, function()
      local ok, err = pcall(lib.osc_decode, bytes)
      assert.is_false(ok)
      assert.matches("^malformed OSC", err)
    end)
  end
end)

describe("OSC head of a datagram cut short", function()
  local done = lib.osc_encode(lib.ADDRESS.done, "job-1", "/media/a.stepedit.transcript.job-1.json",
    string.rep("x", 9000), 7)

  it("keeps the address and every argument that arrived whole", function()
    for _, cut in ipairs({ 8192, 100, 72 }) do -- the path's padding ends at byte 72
      local head = lib.osc_decode_head(done:sub(1, cut))
      assert.are.same({ address = lib.ADDRESS.done, truncated = true,
                        args = { "job-1", "/media/a.stepedit.transcript.job-1.json" } }, head)
    end
    assert.are.same({ "job-1" }, lib.osc_decode_head(done:sub(1, 71)).args)
    assert.are.same({}, lib.osc_decode_head(done:sub(1, 30)).args)
    assert.are.same({ "job-1", 0.5 }, lib.osc_decode_head(lib.osc_encode("/p", "job-1", 0.5)).args)
  end)

  it("gives nil when not even the address and type tags arrived", function()
    assert.is_nil(lib.osc_decode_head(done:sub(1, 10)))
    assert.is_nil(lib.osc_decode_head("#bundle\0" .. string.rep("\0", 8)))
    assert.is_nil(lib.osc_decode_head(""))
  end)
end)

describe("JSON", function()
  it("encodes objects with sorted keys, arrays, numbers, literals", function()
    assert.are.equal('{"a":[1,2.5,"x"],"b":true,"c":null,"d":{}}',
      lib.json_encode({ b = true, a = { 1, 2.5, "x" }, c = lib.json_null, d = {} }))
    assert.are.equal("[]", lib.json_encode(lib.json_array()))
    assert.are.equal("0.1", lib.json_encode(0.1))
    assert.are.equal("-3", lib.json_encode(-3))
    assert.are.equal("1e+300", lib.json_encode(1e300))
  end)

  it("escapes quotes, backslashes and control characters; keeps UTF-8", function()
    assert.are.equal([["a\"b\\c\n\t\u0001é😀"]], lib.json_encode('a"b\\c\n\t\1é😀'))
  end)

  it("refuses what JSON cannot hold", function()
    assert.has_error(function() lib.json_encode(0 / 0) end)
    assert.has_error(function() lib.json_encode(math.huge) end)
    assert.has_error(function() lib.json_encode({ [true] = 1 }) end)
  end)

  it("decodes escapes, \\u sequences and surrogate pairs to UTF-8", function()
    assert.are.equal('a"b\\/\b\f\n\r\té😀',
      lib.json_decode([["a\"b\\\/\b\f\n\r\t\u00e9\ud83d\ude00"]]))
  end)

  it("decodes numbers exactly, integers as integers", function()
    local v = lib.json_decode("[0, -0.5, 12, 1.5e3, 2E-2, -7]")
    assert.are.same({ 0, -0.5, 12, 1500.0, 0.02, -7 }, { table.unpack(v) })
    assert.are.equal("integer", math.type(v[3]))
    assert.are.equal("float", math.type(v[4]))
  end)

  it("decodes nested structures and whitespace", function()
    local v = lib.json_decode(' { "edit" : { "type" : "speed", "position" : [ 0.8 ] } , ' ..
      '"ok": false, "none": null }\n')
    assert.are.equal("speed", v.edit.type)
    assert.are.equal(0.8, v.edit.position[1])
    assert.is_false(v.ok)
    assert.are.equal(lib.json_null, v.none)
  end)

  it("round-trips what the library sends", function()
    local request = { input = "/tmp/a b/ünï.wav", start = 1.25, length = 3.5,
                      edit = { type = "paralinguistic", option = "Laughter", iterations = 2,
                               position = lib.json_array({ 0.8 }) } }
    assert.are.same(request, lib.json_decode(lib.json_encode(request)))
  end)

  for _, bad in ipairs({ "", "{", "[1,]", "{\"a\" 1}", "01", "1.", ".5", "-", "tru",
                         "\"abc", "\"\\x\"", "\"\\ud800\"", "\"a\1\"", "[1] 2", "1e" }) do
    it("rejects invalid JSON: " .. bad, function()
      local ok, err = pcall(lib.json_decode, bad)
      assert.is_false(ok)
      assert.matches("^JSON: ", err)
    end)
  end
end)
