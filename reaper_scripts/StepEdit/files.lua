-- @noindex
-- StepEdit files: paths, command-line quoting and whole-file reads and writes (pure Lua, no
-- reaper.* calls). Paths may use "/" or "\" (Windows).

local M = {}

function M.dirname(path)
  return path:match("^(.*)[/\\][^/\\]*$") or path
end

function M.basename(path)
  return path:match("[^/\\]*$")
end

function M.join(dir, name)
  local sep = (dir:find("\\", 1, true) and not dir:find("/", 1, true)) and "\\" or "/"
  if dir:sub(-1) == sep then return dir .. name end
  return dir .. sep .. name
end

function M.is_absolute(path)
  return path:sub(1, 1) == "/" or path:sub(1, 2) == "\\\\" or path:match("^%a:[/\\]") ~= nil
end

-- ExecProcess is not a shell: it splits the command line at spaces and honours double quotes.
function M.quote(arg)
  if arg:find('"', 1, true) then error("cannot pass a double quote to a command: " .. arg) end
  if arg == "" or arg:find("%s") then return '"' .. arg .. '"' end
  return arg
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

function M.write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  return true
end

-- A file only its owner may read (for secrets). POSIX: created empty, made mode 600 (Lua
-- has no chmod, so a shell runs once per change), then written. Windows: files under the
-- user's profile, where REAPER keeps its resources, are private already.
function M.write_private(path, data)
  if M.read_file(path) == data then return true end
  if package.config:sub(1, 1) == "/" then
    local ok, err = M.write_file(path, "")
    if not ok then return nil, err end
    if not os.execute("chmod 600 '" .. path:gsub("'", "'\\''") .. "'") then
      return nil, "chmod 600 failed"
    end
  end
  return M.write_file(path, data)
end

return M
