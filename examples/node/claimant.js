#!/usr/bin/env node
// A claimant for the call broadcast router, using amqplib and the README's wire contract only.
// Usage: node claimant.js NAME [CONTEXT,EXTENSION,PRIORITY]   (or APP_NAME / APP_TARGET in the environment)
'use strict';
const amqp = require('amqplib');
const { randomUUID } = require('node:crypto');

const env = process.env;
const app = process.argv[2] || env.APP_NAME;
const targetText = process.argv[3] || env.APP_TARGET;
if (!app) {
  console.error('usage: node claimant.js NAME [CONTEXT,EXTENSION,PRIORITY]');
  process.exit(2);
}
const [context, extension = 's', priority = '1'] = targetText ? targetText.split(',') : [];
const target = context ? { context, extension, priority: Number(priority) } : undefined;
const user = env.RABBITMQ_USER || 'guest';

async function main() {
  const connection = await amqp.connect({
    hostname: env.RABBITMQ_HOST || 'localhost',
    port: Number(env.RABBITMQ_PORT || 5672),
    vhost: env.RABBITMQ_VHOST || '/',
    username: user,
    password: env.RABBITMQ_PASSWORD || 'guest',
  });
  const channel = await connection.createChannel();
  // The exchanges belong to the router's side: an app only checks they exist (it may not declare them).
  for (const exchange of ['call.broadcasts', 'call.claims', 'app.heartbeats']) await channel.checkExchange(exchange);
  const queue = `app.${app}`;
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, 'call.broadcasts', app);

  const json = (value) => Buffer.from(JSON.stringify(value));
  const heartbeat = (status) => channel.publish('app.heartbeats', '', json(status ? { app, status } : { app }),
    { contentType: 'application/json', userId: user });

  // Direct reply-to: answers come back on this channel, matched to our claims by correlation_id.
  const pending = new Map();
  await channel.consume('amq.rabbitmq.reply-to', (message) => {
    const broadcast = pending.get(message.properties.correlationId);
    if (!broadcast) return;
    pending.delete(message.properties.correlationId);
    const reply = JSON.parse(message.content.toString());
    if (reply.accepted) {
      console.log(`WON ${reply.callId} channel=${broadcast.channelId} caller=${broadcast.callerNumber}`);
    } else {
      console.log(`LOST ${reply.callId} reason=${reply.reason} winner=${reply.winner ?? ''}`);
    }
  }, { noAck: true });

  await channel.consume(queue, (message) => {
    if (message.properties.type !== 'CallBroadcast') return; // CallClaimed notices (notify=yes)
    const broadcast = JSON.parse(message.content.toString());
    const correlationId = randomUUID();
    pending.set(correlationId, broadcast);
    channel.publish('call.claims', '', json({ callId: broadcast.callId, app, target }), {
      replyTo: 'amq.rabbitmq.reply-to',
      correlationId,
      contentType: 'application/json',
      userId: user, // RabbitMQ checks it is the user we connected as
    });
  }, { noAck: true });

  heartbeat();
  const timer = setInterval(heartbeat, 1000);
  console.log(`${app}: listening on ${queue}`);

  const stop = async () => {
    clearInterval(timer);
    heartbeat('stopping');
    await channel.close();
    await connection.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
