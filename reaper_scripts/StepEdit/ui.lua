-- @noindex
-- StepEdit UI: messages, progress (a ReaImGui window when installed, else the console and
-- the take names) and the small dialogs.
--
--   msg(text, title), console(text), no_undo()
--   imgui()                     -> the ReaImGui API (pinned to 0.9) | nil when not installed
--   open_progress_window(title) -> window | nil (no ReaImGui)
--   show_progress(window, jobs) -> true when the user pressed Cancel
--   restore_take_names(jobs)       undoes the "[StepEdit 40%]" take names
--   ask(title, {{caption, default}, ...}) -> values | nil
--   pick_from_menu(capabilities)  -> {type=, option=} | nil

local import = ...
local items = import("items")

local M = {}

function M.msg(text, title)
  reaper.MB(text, title or "StepEdit", 0)
end

function M.console(text)
  reaper.ShowConsoleMsg(text .. "\n")
end

function M.no_undo()
  reaper.defer(function() end) -- ends the script without a "ReaScript: Run" undo point
end

-------------------------------------------------------------------------------
-- Progress: ReaImGui window when installed, else console + take names
-------------------------------------------------------------------------------

function M.imgui()
  if not reaper.ImGui_GetBuiltinPath then return nil end
  local dir = reaper.ImGui_GetBuiltinPath() .. "/?.lua;"
  if not package.path:find(dir, 1, true) then package.path = dir .. package.path end
  local ok, ImGui = pcall(function() return require("imgui")("0.9") end)
  return ok and ImGui or nil
end

function M.open_progress_window(title)
  local ImGui = M.imgui()
  if not ImGui then return nil end
  return { ImGui = ImGui, ctx = ImGui.CreateContext("StepEdit"), title = title, open = true }
end

-- Draws one frame; returns true when the user pressed Cancel.
local function draw_window(ui, jobs)
  local ImGui, ctx = ui.ImGui, ui.ctx
  ImGui.SetNextWindowSize(ctx, 420, 70 + 44 * #jobs, ImGui.Cond_FirstUseEver)
  local visible, open = ImGui.Begin(ctx, ui.title, true)
  ui.open = open
  local cancel = false
  if visible then
    for _, job in ipairs(jobs) do
      ImGui.Text(ctx, items.describe_item(job.slice))
      local overlay = job.final and job.outcome or job.retry_at and job.stage or
        string.format("%s %d%%", job.stage or "sending", math.floor((job.fraction or 0) * 100))
      ImGui.ProgressBar(ctx, job.final and 1 or (job.fraction or 0), -1, 0, overlay)
    end
    cancel = ImGui.Button(ctx, "Cancel")
    ImGui.End(ctx)
  end
  return cancel
end

local function show_text_progress(job)
  if not job.accepted and not job.retry_at then return end -- nothing to tell yet
  local percent = math.floor((job.fraction or 0) * 100)
  local stamp = (job.stage or "") .. percent // 10
  if stamp == job.shown or job.final then return end
  job.shown = stamp
  M.console(string.format("StepEdit %s: %s %s %d%%", job.label,
    items.describe_item(job.slice), job.stage or "", percent))
  local take = reaper.GetMediaItemTakeByGUID(0, job.slice.take_guid)
  if take and reaper.ValidatePtr2(0, take, "MediaItem_Take*") and job.owns_name then
    items.set_take_name(take, string.format("%s [StepEdit %d%%]", job.slice.name, percent))
    reaper.UpdateItemInProject(reaper.GetMediaItemTake_Item(take))
  end
end

-- In the window while it is open (the user may close it), else in the console and take names.
function M.show_progress(window, jobs)
  if window and window.open then return draw_window(window, jobs) end
  for _, job in ipairs(jobs) do show_text_progress(job) end
  return false
end

function M.restore_take_names(jobs)
  for _, job in ipairs(jobs) do
    if job.owns_name and job.shown then
      local take = reaper.GetMediaItemTakeByGUID(0, job.slice.take_guid)
      if take and reaper.ValidatePtr2(0, take, "MediaItem_Take*") then
        items.set_take_name(take, job.slice.name)
      end
      job.shown = nil
    end
  end
end

-------------------------------------------------------------------------------
-- Dialogs
-------------------------------------------------------------------------------

-- Captions are comma-separated; values use "|" so that they may hold commas.
function M.ask(title, fields)
  local captions, defaults = {}, {}
  for i, f in ipairs(fields) do captions[i], defaults[i] = f[1], f[2] end
  local ok, csv = reaper.GetUserInputs(title, #fields,
    table.concat(captions, ",") .. ",separator=|,extrawidth=220", table.concat(defaults, "|"))
  if not ok then return nil end
  local values = {}
  for value in (csv .. "|"):gmatch("(.-)|") do values[#values + 1] = value end
  return values
end

function M.pick_from_menu(caps)
  local renderable = caps.backends and caps.backends[caps.backend]
    and caps.backends[caps.backend].edits or {}
  local types, entries, menu = {}, {}, {}
  for name in pairs(caps.edit_types or {}) do types[#types + 1] = name end
  table.sort(types)
  for _, name in ipairs(types) do
    local options = caps.edit_types[name].options or {}
    local can = renderable[name] ~= nil
    if #options == 0 then
      menu[#menu + 1] = (can and "" or "#") .. name
      entries[#entries + 1] = { type = name, option = "" }
    else
      menu[#menu + 1] = ">" .. name
      for i, option in ipairs(options) do
        local ok_option = false
        for _, o in ipairs(renderable[name] or {}) do ok_option = ok_option or o == option end
        menu[#menu + 1] = (i == #options and "<" or "") .. (ok_option and "" or "#") .. option
        entries[#entries + 1] = { type = name, option = option }
      end
    end
  end
  local x, y = reaper.GetMousePosition()
  gfx.init("StepEdit", 0, 0, 0, x, y)
  gfx.x, gfx.y = gfx.mouse_x, gfx.mouse_y
  local choice = gfx.showmenu(table.concat(menu, "|"))
  gfx.quit()
  return entries[choice]
end

return M
