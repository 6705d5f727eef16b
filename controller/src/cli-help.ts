/**
 * `fleetwave <command> [sub] --help`: the usage entries of that command out of the CLI's help (each entry its usage
 * line and the lines that explain it), then the options it takes (`serve`'s, or the client options and any the
 * command adds). Undefined for a command the help does not know.
 */
export function commandHelp(help: string, cmd: string, sub: string | undefined, extraOptions = ''): string | undefined {
  const lines = help.split('\n');
  const start = lines.indexOf('Usage:');
  const end = lines.findIndex((l, i) => i > start && l === '');
  const entries: string[][] = [];
  for (const l of lines.slice(start + 1, end)) {
    if (l.startsWith('  fleetwave ')) entries.push([l]);
    else entries.at(-1)?.push(l);
  }
  const of = (prefix: string) =>
    entries.filter((e) => e[0] === prefix || e[0]!.startsWith(`${prefix} `) || e[0]!.startsWith(`${prefix}|`));
  const mine = (
    sub && of(`  fleetwave ${cmd} ${sub}`).length ? of(`  fleetwave ${cmd} ${sub}`) : of(`  fleetwave ${cmd}`)
  )
    .flat()
    .join('\n');
  if (!mine) return undefined;
  const section = (title: string) => {
    const from = lines.findIndex((l) => l.startsWith(title));
    if (from < 0) return '';
    const to = lines.findIndex((l, i) => i > from && l === '');
    return lines.slice(from, to < 0 ? undefined : to).join('\n');
  };
  const options = cmd === 'serve' ? section('serve options:') : section('Client options');
  return `Usage:\n${mine}\n\n${options}\n${extraOptions ? `\n${extraOptions}\n` : ''}`;
}
