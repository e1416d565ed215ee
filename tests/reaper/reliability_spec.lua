-- Issue 9 in the library, against the fake engine over real UDP: a full engine queue is
-- waited out (the same job id resent after growing, jittered waits, without blocking), and
-- requests are signed with the engine's secret, an unauthorized answer explained.
local H = dofile("tests/reaper/helpers.lua")
local FakeEngine = dofile("tests/reaper/fake_engine.lua")

local SECRET = ("0123456789abcdef"):rep(4)

describe("StepEdit reliability", function()
  local emu, lib, engine, wav

  local function run(script, timeout)
    return H.run_checked(emu, script, timeout)
  end

  local function start_engine(opts)
    if engine then engine:close() end
    engine = FakeEngine.new({ lib = lib, write_wav = H.write_wav, key = opts and opts.key,
                              auth = H.module("auth") })
    emu:set_extstate("StepEdit", "port", engine.port, true)
  end

  before_each(function()
    lib = H.lib()
    emu = H.project()
    engine = nil
    start_engine()
    emu.on_tick = function() engine:serve() end
    wav = H.write_wav(emu.dir .. "/Media/voice.wav", 4)
  end)

  after_each(function()
    engine:close()
    H.rmdir(emu.dir)
  end)

  describe("a full queue", function()
    -- The engine refuses the first `refusals` sends of each job with queue_full and this
    -- retry_after; returns the times of every send.
    local function refuse(refusals, retry_after)
      local sent = {}
      engine.behaviour = function(request)
        local times = sent[request.start] or {}
        sent[request.start] = times
        times[#times + 1] = reaper.time_precise()
        if #times <= refusals then return { queue_full = retry_after } end
      end
      return sent
    end

    it("is waited out: the same job is resent after retry_after plus jitter, doubling", function()
      local sent = refuse(3, 0.5)
      local item = emu:add_item(emu.track, { file = wav, length = 2 })
      assert.are.equal("idle", run("Faster", 30))

      assert.are.equal(4, #engine.requests)
      for _, r in ipairs(engine.requests) do assert.are.equal(engine.requests[1].id, r.id) end
      local times, tick = sent[0], 1 / 30
      for i = 1, 3 do -- waited 0.5 * 2^(i-1), plus up to half of it, plus the ticks between
        local wait, base = times[i + 1] - times[i], 0.5 * 2 ^ (i - 1)
        assert.is_true(wait >= base and wait <= 1.5 * base + 3 * tick,
          string.format("wait %d: %.3f s, expected %.2f-%.2f s", i, wait, base, 1.5 * base))
      end
      assert.are.equal(2, #item.takes) -- then rendered and applied, with no error shown
      assert.are.same({}, emu.messages)
      assert.matches("waiting for the engine %(queue full%)", H.console_text(emu))
    end)

    it("spreads the resends of many clients with random jitter", function()
      local sent = refuse(1, 4)
      for i = 0, 5 do emu:add_item(emu.track, { file = wav, position = 5 * i, startoffs = i * 0.25,
                                                length = 1 }) end
      run("Faster", 30)
      local waits = {}
      for _, times in pairs(sent) do
        local wait = times[2] - times[1]
        assert.is_true(wait >= 4 and wait <= 6.1, tostring(wait))
        waits[string.format("%.1f", wait)] = true
      end
      local distinct = 0
      for _ in pairs(waits) do distinct = distinct + 1 end
      assert.is_true(distinct > 1, "every job waited the same")
    end)

    it("reports an item as failed after 8 refusals; the others are applied", function()
      engine.behaviour = function(request)
        if request.start > 0 then return { queue_full = 0.25 } end
      end
      local kept = emu:add_item(emu.track, { file = wav, length = 1 })
      local refused = emu:add_item(emu.track, { file = wav, position = 5, startoffs = 1, length = 1 })
      assert.are.equal("idle", run("Faster", 120))
      local tries = 0
      for _, r in ipairs(engine.requests) do
        if r.request.start > 0 then tries = tries + 1 end
      end
      assert.are.equal(8, tries)
      assert.are.equal(2, #kept.takes)
      assert.are.equal(1, #refused.takes)
      assert.are.equal(1, #emu.messages)
      assert.matches("1 of 2 item%(s%) could not be edited", emu.messages[1].text)
      assert.matches("queue stayed full %(8 tries%)", emu.messages[1].text)
    end)

    it("shows the wait in the progress window, not as an error", function()
      local bars = {}
      local ImGui = { Cond_FirstUseEver = 2 }
      function ImGui.CreateContext() return {} end
      function ImGui.SetNextWindowSize() end
      function ImGui.Begin() return true, true end
      function ImGui.End() end
      function ImGui.Text() end
      function ImGui.ProgressBar(_, _, _, _, overlay) bars[#bars + 1] = overlay end
      function ImGui.Button() return false end
      H.fake_imgui(emu, ImGui)
      refuse(1, 2)
      emu:add_item(emu.track, { file = wav, length = 1 })
      emu:run_script(H.action(emu, "Faster"))
      for _ = 1, 10 do emu:tick() end
      assert.are.equal("waiting for the engine (queue full)", bars[#bars])
      assert.are.equal("idle", emu:run_deferred(10))
      assert.are.same({}, emu.messages)
    end)
  end)

  describe("signed requests", function()
    it("are sent when a secret is set, and the engine that requires them serves them", function()
      start_engine({ key = { id = "studio", secret = SECRET } })
      emu:set_extstate("StepEdit", "key_id", "studio", true)
      emu:set_extstate("StepEdit", "secret", SECRET, true)
      local item = emu:add_item(emu.track, { file = wav, length = 2 })
      assert.are.equal("idle", run("Faster"))
      assert.are.equal(0, engine.unauthorized)
      assert.are.equal(2, #item.takes)
      assert.are.same({}, emu.messages)
      assert.is_nil(H.console_text(emu):find(SECRET, 1, true), "the secret is never logged")
    end)

    it("refused: every item fails with a message naming the Settings action", function()
      start_engine({ key = { id = "default", secret = SECRET } })
      emu:set_extstate("StepEdit", "secret", ("f"):rep(64), true)
      local item = emu:add_item(emu.track, { file = wav, length = 2 })
      assert.are.equal("idle", run("Faster"))
      assert.is_true(engine.unauthorized >= 1)
      assert.are.same({}, engine.requests)
      assert.are.equal(1, #item.takes)
      assert.are.equal(1, #emu.messages)
      local text = emu.messages[1].text
      assert.matches("unauthorized", text, 1, true)
      assert.matches('"StepEdit_Settings"', text, 1, true)
      assert.matches("stepedit secret", text, 1, true)
    end)

    it("refused to an unsigned query: Engine status says how to set the secret", function()
      start_engine({ key = { id = "default", secret = SECRET } })
      run("Engine status")
      assert.are.equal(1, #emu.messages)
      assert.are.equal("StepEdit: engine refused the request", emu.messages[1].title)
      assert.matches('"StepEdit_Settings"', emu.messages[1].text, 1, true)
    end)

    it("keeps a badly pasted secret out of the settings and says why", function()
      emu:set_extstate("StepEdit", "secret", SECRET, true)
      local answer = { "127.0.0.1", tostring(engine.port), "stepedit", "0", "1", "auto", "auto",
                       "room_tone", "0", "", "", "auto", "", "default", "not a secret" }
      emu.responses.GetUserInputs = { answer }
      run("Settings")
      assert.are.equal("*", emu.inputs_asked[1].captions[15]:sub(1, 1), "typed secrets are hidden")
      assert.are.equal(SECRET, lib.settings().key.secret)
      assert.matches("64 hex characters", emu.messages[1].text, 1, true)
      answer[15] = ""
      emu.responses.GetUserInputs = { answer }
      run("Settings")
      assert.is_nil(lib.settings().key) -- blank: plain requests again
    end)
  end)
end)
