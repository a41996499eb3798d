<#
.SYNOPSIS
  Installs the TAOLIE host agent on a Windows 10/11 PC with an NVIDIA GPU, inside WSL2.

.DESCRIPTION
  Run as Administrator from a release directory (setup.ps1 next to setup.sh and the .deb) or
  a checkout of the project. It:
    1. checks Windows (WSL2 with GPU: Windows 10 21H2 build 19044+ or Windows 11) and the NVIDIA
       Windows driver (nvidia-smi.exe); no Linux driver is ever installed inside WSL;
    2. enables WSL2 and installs the distribution (Debian, whose Debian 12 is what setup.sh is
       tested on), with systemd turned on in /etc/wsl.conf;
    3. installs Docker Engine inside the distribution (Debian's docker.io) and the NVIDIA
       container toolkit's runtime hook when it is available, so rentals get their GPUs;
    4. runs setup.sh inside the distribution with the same settings;
    5. makes the rental ports reachable from outside: WSL's mirrored networking where Windows
       has it (Windows 11 22H2+), else `netsh interface portproxy` rules to the WSL address,
       refreshed at every logon by a scheduled task (the address changes);
    6. opens exactly those ports in Windows Firewall (rules named "TAOLIE host agent ...").
  Run again, it changes nothing that is already in place. -Uninstall removes the portproxy
  rules, the firewall rules and the scheduled task, and runs uninstall.sh inside WSL (data kept).

  Reviewed on paper (docs/windows.md): the project's CI has no Windows machine.

.EXAMPLE
  .\setup.ps1 -ApiKey 'KEY' -PublicIp 203.0.113.10 -PortRange 30000-30099
#>
[CmdletBinding()]
param(
  [string]$ApiKey = "",
  [string]$PublicIp = "",
  [int]$SshPort = 22,
  [int]$RentalPort1 = 8888,
  [int]$RentalPort2 = 9999,
  [string]$PortRange = "",
  [string]$ServerUrl = "",
  [string]$Distribution = "Debian",
  [switch]$Uninstall
)
Set-StrictMode -Version Latest
$ErrorActionPreference = "Stop"

$RuleName = "TAOLIE host agent"
$TaskName = "TAOLIE host agent port proxy"
$StateDir = Join-Path $env:ProgramData "taolie-host-agent"
$PortsFile = Join-Path $StateDir "ports.txt"   # the ports this script exposed, for -Uninstall

function Fail([string]$Message) { Write-Error "setup.ps1: $Message"; exit 1 }
function Say([string]$Message) { Write-Host "setup.ps1: $Message" }

# --- Administrator --------------------------------------------------------------------------
$principal = New-Object Security.Principal.WindowsPrincipal(
  [Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  Fail "run this from an Administrator PowerShell"
}

# --- The ports to expose: ssh, the two rental ports and every port of the range ---------------
function Get-RentalPorts {
  $ports = @($SshPort, $RentalPort1, $RentalPort2) | Where-Object { $_ -gt 0 }
  if ($PortRange -ne "") {
    if ($PortRange -notmatch '^(\d{1,5})-(\d{1,5})$') { Fail "-PortRange must look like 30000-30099" }
    $first = [int]$Matches[1]; $last = [int]$Matches[2]
    if ($first -lt 1 -or $last -gt 65535 -or $first -gt $last) { Fail "-PortRange $PortRange is not a range of ports" }
    if ($last - $first -ge 1000) { Fail "-PortRange: at most 1000 ports through portproxy (each is one rule)" }
    $ports += $first..$last
  }
  return $ports | Sort-Object -Unique
}

function Invoke-Wsl([string]$Command) {
  # As root inside the distribution; the exit status is passed on.
  & wsl.exe -d $Distribution -u root -- bash -lc $Command
  if ($LASTEXITCODE -ne 0) { Fail "inside WSL ($Distribution) failed: $Command" }
}

function Remove-PortRules {
  # Only the ports this script exposed (recorded at install), never another program's rules.
  $ours = if (Test-Path $PortsFile) { Get-Content $PortsFile | ForEach-Object { [int]$_ } } else { @() }
  foreach ($port in $ours) {
    & netsh interface portproxy delete v4tov4 listenport=$port listenaddress=0.0.0.0 2>$null | Out-Null
  }
  Remove-Item -Force $PortsFile -ErrorAction SilentlyContinue
  Get-NetFirewallRule -DisplayName "$RuleName*" -ErrorAction SilentlyContinue | Remove-NetFirewallRule
  if (Get-Command Remove-NetFirewallHyperVRule -ErrorAction SilentlyContinue) {
    Get-NetFirewallHyperVRule -Name "TAOLIE-host-agent-rental-ports" -ErrorAction SilentlyContinue |
      Remove-NetFirewallHyperVRule
  }
  Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
}

if ($Uninstall) {
  Remove-PortRules
  $installed = (& wsl.exe -l -q) -replace "`0", "" | Where-Object { $_.Trim() -eq $Distribution }
  if ($installed) {
    $here = Split-Path -Parent $MyInvocation.MyCommand.Path
    $root = Split-Path -Parent (Split-Path -Parent $here)
    $un = if (Test-Path (Join-Path $root "deploy/uninstall.sh")) { "deploy/uninstall.sh" } else { "uninstall.sh" }
    if ($un -eq "uninstall.sh") { $root = $here }
    $wslRoot = (& wsl.exe -d $Distribution -- wslpath -a ($root -replace '\\', '/')).Trim()
    Invoke-Wsl "'$wslRoot/$un'"
  }
  Say "removed the port rules, the firewall rules and the task; the agent's data in WSL is kept"
  exit 0
}

# --- 1. Windows and the NVIDIA driver ---------------------------------------------------------
$build = [int](Get-CimInstance Win32_OperatingSystem).BuildNumber
if ($build -lt 19044) { Fail "Windows build $build: GPU in WSL2 needs Windows 10 21H2 (19044) or Windows 11" }
$smi = Get-Command nvidia-smi.exe -ErrorAction SilentlyContinue
if (-not $smi) {
  Fail "nvidia-smi.exe not found: install NVIDIA's Windows driver (it brings CUDA on WSL). Never install a Linux NVIDIA driver inside WSL."
}
Say ("NVIDIA driver: " + ((& nvidia-smi.exe --query-gpu=name,driver_version --format=csv,noheader) -join "; "))

# --- 2. WSL2, the distribution, systemd -------------------------------------------------------
& wsl.exe --status *> $null
if ($LASTEXITCODE -ne 0) {
  Say "enabling WSL2 (a reboot may be asked for; run setup.ps1 again after it)"
  & wsl.exe --install --no-distribution
  if ($LASTEXITCODE -ne 0) { Fail "wsl --install failed" }
}
& wsl.exe --set-default-version 2 | Out-Null
$installed = (& wsl.exe -l -q) -replace "`0", "" | Where-Object { $_.Trim() -eq $Distribution }
if (-not $installed) {
  Say "installing the WSL distribution $Distribution"
  & wsl.exe --install -d $Distribution --no-launch
  if ($LASTEXITCODE -ne 0) { Fail "wsl --install -d $Distribution failed" }
  & wsl.exe -d $Distribution -u root -- true
}
# systemd inside WSL (the agent runs as a systemd service there).
Invoke-Wsl "grep -q '^systemd=true' /etc/wsl.conf 2>/dev/null || printf '[boot]\nsystemd=true\n' >> /etc/wsl.conf"
& wsl.exe --terminate $Distribution | Out-Null
Invoke-Wsl "test -d /run/systemd/system"

# --- 3. Docker Engine and the NVIDIA container runtime hook inside WSL ------------------------
Invoke-Wsl "command -v dockerd >/dev/null || (apt-get update && apt-get install -y docker.io)"
Invoke-Wsl "systemctl enable --now docker"
Invoke-Wsl "test -e /usr/lib/wsl/lib/libnvidia-ml.so.1 || { echo 'no /usr/lib/wsl/lib/libnvidia-ml.so.1: update the NVIDIA Windows driver' >&2; exit 1; }"
Invoke-Wsl "command -v nvidia-ctk >/dev/null && nvidia-ctk runtime configure --runtime=docker && systemctl restart docker || echo 'nvidia-container-toolkit is not installed in WSL: install it (docs/windows.md) so that rentals get GPUs'"

# --- 4. setup.sh inside WSL -------------------------------------------------------------------
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$root = Split-Path -Parent (Split-Path -Parent $here)   # deploy/windows -> the checkout
if (-not (Test-Path (Join-Path $root "deploy/setup.sh"))) { $root = $here }  # a release directory
$wslRoot = (& wsl.exe -d $Distribution -- wslpath -a ($root -replace '\\', '/')).Trim()
$setup = if (Test-Path (Join-Path $root "deploy/setup.sh")) { "$wslRoot/deploy/setup.sh" } else { "$wslRoot/setup.sh" }
$setupArgs = @("--yes", "--ssh-port", $SshPort, "--rental-port-1", $RentalPort1, "--rental-port-2", $RentalPort2)
if ($ApiKey -ne "") { $setupArgs += @("--api-key", $ApiKey) }
if ($PublicIp -ne "") { $setupArgs += @("--public-ip", $PublicIp) }
if ($PortRange -ne "") { $setupArgs += @("--port-range", $PortRange) }
if ($ServerUrl -ne "") { $setupArgs += @("--server-url", $ServerUrl) }
# Arguments pass as separate words (no shell quoting of the API key).
& wsl.exe -d $Distribution -u root -- $setup @setupArgs
if ($LASTEXITCODE -ne 0) { Fail "setup.sh inside WSL failed" }

# --- 5. Reaching the rental ports from outside ------------------------------------------------
$ports = Get-RentalPorts
New-Item -ItemType Directory -Force -Path $StateDir | Out-Null
Remove-PortRules            # the rules of an earlier run (its ports may have been others)
Set-Content -Path $PortsFile -Value ($ports -join "`r`n") -Encoding ASCII
$mirrored = $build -ge 22621   # Windows 11 22H2+: WSL mirrored networking
if ($mirrored) {
  $cfg = Join-Path $env:USERPROFILE ".wslconfig"
  $text = if (Test-Path $cfg) { Get-Content $cfg -Raw } else { "" }
  if ($text -notmatch '(?m)^\s*networkingMode\s*=\s*mirrored') {
    if ($text -notmatch '(?m)^\[wsl2\]') { $text += "`r`n[wsl2]`r`n" }
    $text = $text -replace '(?m)^\[wsl2\]\s*$', "[wsl2]`r`nnetworkingMode=mirrored"
    Set-Content -Path $cfg -Value $text -Encoding ASCII
    & wsl.exe --shutdown
    Say "WSL uses mirrored networking ($cfg): the ports of WSL are the PC's ports"
  }
  # Mirrored mode filters inbound traffic to WSL with the Hyper-V firewall as well: allow the
  # same ports there (WSL's VM creator id), where this Windows has the cmdlet.
  if (Get-Command New-NetFirewallHyperVRule -ErrorAction SilentlyContinue) {
    $wslCreator = '{40E0AC32-46A5-438A-A0B2-2B479E8F2E90}'
    Get-NetFirewallHyperVRule -Name "TAOLIE-host-agent-rental-ports" -ErrorAction SilentlyContinue |
      Remove-NetFirewallHyperVRule
    New-NetFirewallHyperVRule -Name "TAOLIE-host-agent-rental-ports" `
      -DisplayName "$RuleName (rental ports, WSL)" -Direction Inbound -VMCreatorId $wslCreator `
      -Protocol TCP -LocalPorts $ports -Action Allow | Out-Null
  }
} else {
  # NAT: one portproxy rule per port to the WSL VM's address, refreshed at every logon.
  $refresh = @"
`$ip = ((wsl.exe -d $Distribution -- hostname -I) -split ' ')[0].Trim()
foreach (`$p in @($($ports -join ','))) {
  netsh interface portproxy delete v4tov4 listenport=`$p listenaddress=0.0.0.0 | Out-Null
  netsh interface portproxy add v4tov4 listenport=`$p listenaddress=0.0.0.0 connectport=`$p connectaddress=`$ip | Out-Null
}
"@
  $script = Join-Path $StateDir "portproxy.ps1"
  Set-Content -Path $script -Value $refresh -Encoding ASCII
  & powershell.exe -NoProfile -ExecutionPolicy Bypass -File $script
  $action = New-ScheduledTaskAction -Execute "powershell.exe" -Argument "-NoProfile -ExecutionPolicy Bypass -File `"$script`""
  $trigger = New-ScheduledTaskTrigger -AtLogOn
  Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -RunLevel Highest -Force | Out-Null
  Say ("portproxy rules for {0} port(s) to WSL, refreshed at each logon" -f $ports.Count)
}

# --- 6. Windows Firewall: exactly those ports, inbound TCP -----------------------------------
Get-NetFirewallRule -DisplayName "$RuleName*" -ErrorAction SilentlyContinue | Remove-NetFirewallRule
New-NetFirewallRule -DisplayName "$RuleName (rental ports)" -Direction Inbound -Action Allow `
  -Protocol TCP -LocalPort $ports | Out-Null
Say ("Windows Firewall allows TCP {0}" -f ($ports -join ','))
Say "done. Inside WSL: wsl -d $Distribution -- taolie-host-agent status"
