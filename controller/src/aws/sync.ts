import { DescribeThingCommand, type IoTClient, ListThingsInThingGroupCommand } from '@aws-sdk/client-iot';

export interface RegistryDevice {
  id: string;
  hardware: string | null;
  tags: Record<string, string>;
}

/** The things of a fleet's thing group on AWS IoT Core, as registry devices (the `hardware` attribute, the rest as tags). */
export async function thingsOfFleet(client: IoTClient, fleet: string): Promise<RegistryDevice[]> {
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await client.send(
      new ListThingsInThingGroupCommand({ thingGroupName: fleet, nextToken, maxResults: 250 }),
    );
    names.push(...(page.things ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  const out: RegistryDevice[] = [];
  for (const name of names) {
    const t = await client.send(new DescribeThingCommand({ thingName: name }));
    const { hardware, ...tags } = t.attributes ?? {};
    out.push({ id: name, hardware: hardware ?? null, tags });
  }
  return out;
}
